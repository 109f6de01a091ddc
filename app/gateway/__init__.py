"""The validator's gateway: the organic job API (keys, jobs, routing, failover, sampled verification).

keys.py    API keys: created once, stored hashed, rate and daily limits in Redis counters
jobs.py    a job's records and its view: create (idempotent), claim, attempt, finish, cancel
routing.py which miner gets an organic job: score and tier weighted, a floor, exploration
runner.py  a job's attempts on the I/O worker: route, call, fail over, deliver, sample
api.py     the FastAPI app (`seedgrid gateway`): /v1/jobs, /v1/models, /v1/images/generations
"""
