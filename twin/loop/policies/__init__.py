from twin.loop.policies.classical import *  # noqa: F403 - temporary: split follows
from twin.loop.policies.classical import POLICIES, Decision, Link, Policy, make_policy, mask_of, ranked, register_policy  # noqa: F401,E501
