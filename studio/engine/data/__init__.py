"""Data in: read files, detect the record format, validate by row, tokenize and mask."""
