"""Test harnesses that run beside the engine tests: one module per role.

``netns``      a test host in its own network namespace (veth pair, private /30)
``gitlab``     the fake GitLab (tests/fakegitlab) served on such a test host
``joblog``     job traces as GitLab stores them (timestamps, masking): the one parser
               every test reads traces with
"""
