# Shared by the layers' Makefiles (sam build runs them as `make -f <layer>/Makefile`, so they find this file
# through their own path). The layers are precompiled (.pyc, unchecked-hash: Python loads them without looking at
# the sources) by the runtime's Python: /opt is read-only in Lambda, so without them every cold start compiles
# every module again, and Lambda ignores .pyc files of another Python version. Found as python3.13 on PATH or under
# pyenv; where it is missing, python3 compiles and the build says so (the layer still works, it compiles at cold
# start).

PYTHON_VERSION ?= 3.13
ifeq ($(origin PYTHON),undefined)
PYTHON := $(or $(firstword $(foreach candidate,python$(PYTHON_VERSION) \
	$(wildcard $(shell pyenv root 2>/dev/null)/versions/$(PYTHON_VERSION)*/bin/python$(PYTHON_VERSION)),\
	$(shell $(candidate) -c '' >/dev/null 2>&1 && echo $(candidate)))),python3)
endif

# $(call check-python,<layer>): warn when the layer is compiled by another Python than the runtime's.
check-python = @$(PYTHON) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; v == "$(PYTHON_VERSION)" or print( \
	f"WARNING: no Python $(PYTHON_VERSION) found, compiling $(1) with Python {v}: Lambda ignores these" \
	" .pyc files and compiles the layer at every cold start", file=sys.stderr)'

# $(call precompile): the .pyc files of everything in $(ARTIFACTS_DIR)/python, as the runtime finds it in /opt/python.
precompile = $(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash \
	-s $(ARTIFACTS_DIR)/python -p /opt/python $(ARTIFACTS_DIR)/python
