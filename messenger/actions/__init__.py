"""Every state change of messenger lives in this package (one door per change).

``do_*`` functions trust their input, write the rows and the audit row, and schedule events for
after commit. ``check_*`` functions validate and check permission, then call ``do_*``.
Transports (consumers, views, tasks, admin) call these and nothing else to change state.
"""
