"""External generation services behind one provider interface (issue 12): no Celery, no web framework."""
