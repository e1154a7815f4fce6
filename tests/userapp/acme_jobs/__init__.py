"""A user's own package of job kinds, outside Conveyor's: tests/integration/test_user_app.py
puts `tests/userapp` on PYTHONPATH and runs `conveyor worker --app acme_jobs.kinds:app`."""
