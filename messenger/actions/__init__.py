"""Every state change of messenger lives in this package (one door per change).

``do_*`` functions trust their input, write the rows and the audit row, and schedule events for
after commit. ``check_*`` functions validate and check permission, then call ``do_*``.
Transports (consumers, views, tasks, admin) call these and nothing else to change state.
The modules import one another downward only, in the layers of README.md ("Layout"), checked by
``lint-imports``: a follow-up of a change is called by the workflow above it, never back upward.
"""
