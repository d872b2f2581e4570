"""Tests that run only inside the Debian 12 VM of scripts/test-vm.sh (cgroup v2, systemd).

They are not collected on any other machine (tests/conftest.py leaves this directory out there):
tests/integration/vm/ boots the VM and runs them, as root and as a user with a systemd session.
"""
