"""File jobs: batch separation of files and videos, file streaming, and output naming."""
