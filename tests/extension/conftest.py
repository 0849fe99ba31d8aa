# The throwaway channel's files (tests/extension/pager/) are copied into a copy of the repository by the extension
# test; in this repository they are data, not tests.
collect_ignore = ["pager"]
