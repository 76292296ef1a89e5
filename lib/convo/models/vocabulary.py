"""The values events and conversations take: event names, statuses, the tags the flags look for.

Plain constants, without Ibis: the models read them, and so do the audit's suites, whose process
imports Great Expectations and nothing it does not need.
"""

CUSTOMER_MESSAGE = "customer_message_received"
STATUS_CHANGE = "status_changed_to"
AGENT_ASSIGNED = "agent_assigned"
AGENT_MESSAGE = "message_sent_to_customer"
TAG_ASSIGNED = "tag_assigned"
EVENT_TYPES = (CUSTOMER_MESSAGE, STATUS_CHANGE, AGENT_ASSIGNED, AGENT_MESSAGE, TAG_ASSIGNED)

OPEN, WAITING, CLOSED = "OPEN", "WAITING FOR CUSTOMER", "CLOSED"
STATUS_VALUES = (OPEN, WAITING, CLOSED)

# The `*_related` flags of the lifecycle fact, and the tag each one looks for.
FLAG_TAGS = {"payments_related": "payments", "app_related": "app_question", "login_related": "login"}
