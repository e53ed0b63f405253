"""The guard's path-spelling matrix (issue 10): unsigned spellings of every protected path, against every
integration, mounted plainly, under a prefix and under a root path, in-process and under real servers.

``matrix`` holds the data (configurations, spellings, how an answer is classified, the table);
``apps`` builds the applications; ``inprocess`` drives them without a server; the tests are
``test_inprocess.py``, ``test_servers.py`` and ``test_beyond.py``. Print the table with
``.venv/bin/pytest tests/guard/spellings -q -s``.
"""
