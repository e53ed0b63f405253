#!/bin/sh
exec mod_wsgi-express start-server app.wsgi --port 8000 --limit-request-body 1048576
