-- The reference for the build benchmark: one plain, hand-written DuckDB SQL pass that computes
-- the lifecycle table (the same definitions as fact_conversation_lifecycle) straight from the
-- raw CSV. No rejects table, no de-duplication, no versions, no other tables, no audits.
-- $EVENTS is replaced by the CSV path.
CREATE OR REPLACE TABLE reference_lifecycle AS
WITH raw AS (
    SELECT *, row_number() OVER () AS line
    FROM read_csv('$EVENTS', header = true, all_varchar = true, delim = ',', quote = '"', escape = '"')
), events AS (
    SELECT try_strptime(trim(event_timestamp), '%Y-%m-%d %H:%M:%S') AS ts,
           trim(conversation_id)::BIGINT AS cid,
           trim(user_id)::BIGINT AS uid,
           nullif(trim(agent_id), '')::BIGINT AS aid,
           lower(trim(event)) AS ev,
           trim(event_value) AS val,
           line
    FROM raw
), per_event AS (
    SELECT *,
           ev = 'status_changed_to' AND upper(val) = 'CLOSED' AS is_closed,
           min(ts) FILTER (WHERE ev = 'customer_message_received') OVER (PARTITION BY cid) AS first_customer_at,
           max((ts, line)) FILTER (WHERE ev = 'customer_message_received') OVER (PARTITION BY cid) AS last_customer
    FROM events
), agents AS (
    SELECT cid, count(DISTINCT agent) AS n
    FROM (SELECT cid, aid AS agent FROM events UNION ALL
          SELECT cid, try_cast(val AS BIGINT) FROM events WHERE ev = 'agent_assigned')
    WHERE agent IS NOT NULL GROUP BY cid
), summary AS (
    SELECT cid AS id,
           arg_min(uid, (ts, line)) AS user_id,
           coalesce(arg_max(upper(val), (ts, line)) FILTER (WHERE ev = 'status_changed_to'), 'OPEN') AS status,
           min(ts) AS opened_at,
           max(ts) FILTER (WHERE is_closed) AS last_closed_at,
           count(DISTINCT lower(val)) FILTER (WHERE ev = 'tag_assigned') AS number_tags_assigned,
           count(*) FILTER (WHERE ev IN ('customer_message_received', 'message_sent_to_customer')) AS interaction,
           bool_or(ev = 'tag_assigned' AND lower(val) = 'payments')::INT AS payments_related,
           bool_or(ev = 'tag_assigned' AND lower(val) = 'app_question')::INT AS app_related,
           bool_or(ev = 'tag_assigned' AND lower(val) = 'login')::INT AS login_related,
           count(*) FILTER (WHERE is_closed AND (ts, line) < last_customer) AS reopen_count,
           min(first_customer_at) AS first_customer_at,
           min(ts) FILTER (WHERE ev = 'message_sent_to_customer' AND ts >= first_customer_at) AS first_agent_at
    FROM per_event GROUP BY cid
)
SELECT s.id, s.user_id, s.status, s.opened_at,
       CASE WHEN s.status = 'CLOSED' THEN s.last_closed_at END AS closed_at,
       coalesce(a.n, 0) AS number_involved_agents, s.number_tags_assigned,
       s.interaction AS interaction_between_customer,
       (epoch(CASE WHEN s.status = 'CLOSED' THEN s.last_closed_at END) - epoch(s.opened_at)) / 3600.0 AS hours_to_resolve,
       s.payments_related, s.app_related, s.login_related, s.reopen_count,
       (epoch(s.first_agent_at) - epoch(s.first_customer_at)) / 60.0 AS first_response_minutes,
       strftime(s.opened_at, '%Y%m%d')::INT AS opened_date_key,
       strftime(CASE WHEN s.status = 'CLOSED' THEN s.last_closed_at END, '%Y%m%d')::INT AS closed_date_key
FROM summary s LEFT JOIN agents a ON a.cid = s.id;
