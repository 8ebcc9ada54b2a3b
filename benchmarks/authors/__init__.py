"""Runners of the authors' own code, for parity with czsl's plugins (never imported by
czsl/). Each module reads the authors' files from a checkout given at run time, edits
them at run time only (every edit listed, each checked to occur as often as expected)
and runs them as a child process."""
