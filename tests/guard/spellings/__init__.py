"""The guard's path-spelling matrix (issue 10): unsigned spellings of every protected path, against every
integration, mounted plainly, under a prefix and under a root path, in-process and under real servers.

``matrix`` holds the data (configurations, spellings, how an answer is classified, the tables);
``apps`` (and ``fastapi_apps``, ``django_urls``) builds the applications, ``serve_wsgi`` /
``serve_asgi`` serve them; ``inprocess`` drives them without a server; ``beyond`` lists the attempts
beyond path spellings. The tests: ``test_inprocess.py``, ``test_servers.py`` (slow) and
``test_bypasses.py``. Print the tables (compact, full, beyond) with::

    .venv/bin/pytest tests/guard/spellings -q -s

(they are also written to ``spellings-table.md`` under pytest's base temporary directory, named in
the summary line).
"""
