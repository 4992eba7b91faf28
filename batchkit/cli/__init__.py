"""The command line: click commands and reporters.  The only part of batchkit that prints."""
