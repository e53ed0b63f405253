# ruff: noqa
# fmt: off
from django.conf import settings

MB = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * MB  # expect: django-upload-limit
FILE_UPLOAD_MAX_MEMORY_SIZE = 100 * MB
settings.configure(DATA_UPLOAD_MAX_MEMORY_SIZE=5 * MB)  # ok: django-upload-limit
