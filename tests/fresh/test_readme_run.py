"""The README's run command on a fresh Debian machine (``devstack.fresh_machine``): Debian trixie minbase with
only python3 and make, this working tree in /root/notifications, the command run as root in a chroot in its own
mount and PID namespaces, SIGINT once the demo has reported. A cold run (it always is: nothing is cached in the
root) takes 1.5 to 2 minutes and 2 CPU minutes; conftest.py starts it when the session has collected this test,
which runs last and awaits it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fresh.conftest import BackgroundRun


@pytest.mark.timeout(30 * 60)  # the run bounds itself (20 min up to the demo, 2 min to stop)
def test_readme_run_on_a_fresh_debian_root_delivers_every_sample_and_stops_on_sigint(
    fresh_machine_run: BackgroundRun, record_property: Callable[[str, object], None]
) -> None:
    # Given a Debian minbase root with python3 and make only, and this working tree in it
    # When the README's run command runs there as root until the demo has reported, then gets SIGINT
    result = fresh_machine_run.result.result()
    record_property("wall_seconds", round(result.wall_seconds))
    record_property("cpu_seconds", round(result.cpu_seconds))

    # Then the demo delivered every sample on every channel, and the stack stopped by itself
    log = f"`{result.command}` on a fresh root, log {result.log}:\n{result.tail()}"
    assert not result.cut_short, f"the stack was not running within the time limit; {log}"
    assert result.delivered is not None, f"the demo never reported; {log}"
    delivered, posted = result.delivered
    assert posted > 0, log
    assert delivered == posted, f"{delivered}/{posted} delivered; {log}"
    assert result.stopped, f"did not stop cleanly on SIGINT (exit {result.returncode}); {log}"
