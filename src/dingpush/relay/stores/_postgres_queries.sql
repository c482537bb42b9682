-- The PostgreSQL outbox's queries, one per `-- name:` block, bound by name (%(param)s) and never
-- formatted from data. Loaded by _postgres_ops.py; the schema is in _postgres_schema.py. Tables
-- are found through the session's search_path, which points at the store's schema.
--
-- Each write is one statement where it can be, so it is atomic on its own (autocommit) and
-- costs one round trip. Under READ COMMITTED an UPDATE that waits for a row another session is
-- changing re-checks its WHERE clause on the row's newest version before changing it: that is
-- what makes the lease checks below (status = 'sending' AND lease_token = ...) safe across
-- instances.

-- name: insert_messages
-- A batch in one statement, inserted in the given order (seq follows it). A repeated
-- idempotency key, in the table or earlier in the batch, inserts nothing and returns no row.
INSERT INTO messages (id, target, kind, payload, status, idempotency_key,
                      created_at, updated_at, due_at)
SELECT m.id, m.target, m.kind, m.payload, 'queued', m.idempotency_key,
       %(now)s, %(now)s, coalesce(m.due_at, %(now)s)
  FROM unnest(%(ids)s::text[], %(targets)s::text[], %(kinds)s::text[], %(payloads)s::text[],
              %(keys)s::text[], %(due)s::double precision[])
       WITH ORDINALITY AS m(id, target, kind, payload, idempotency_key, due_at, n)
 ORDER BY m.n
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id;

-- name: ids_for_keys
SELECT idempotency_key, id FROM messages WHERE idempotency_key = ANY(%(keys)s::text[]);

-- name: get_message
SELECT * FROM messages WHERE id = %(id)s;

-- name: claim_due
-- Oldest due first across targets (index messages_queue). SKIP LOCKED: a row another instance
-- is claiming or settling right now is left to it, never waited for. A row claimed and
-- committed since this statement's snapshot is re-checked on its newest version and dropped,
-- because it is no longer queued. RETURNING gives no order: callers sort.
WITH picked AS (
    SELECT seq FROM messages
     WHERE status = 'queued' AND due_at <= %(now)s
     ORDER BY due_at, seq
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE messages AS m
   SET status = 'sending', lease_token = %(token)s, lease_until = %(lease_until)s,
       claimed_at = %(now)s, updated_at = %(now)s
  FROM picked
 WHERE m.seq = picked.seq
RETURNING m.*;

-- name: claim_due_for_target
-- The same for one target (index messages_target_queue).
WITH picked AS (
    SELECT seq FROM messages
     WHERE target = %(target)s AND status = 'queued' AND due_at <= %(now)s
     ORDER BY due_at, seq
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE messages AS m
   SET status = 'sending', lease_token = %(token)s, lease_until = %(lease_until)s,
       claimed_at = %(now)s, updated_at = %(now)s
  FROM picked
 WHERE m.seq = picked.seq
RETURNING m.*;

-- name: mark_delivered
-- A delivery is a fact: recorded whatever the lease, unless the message was delivered already
-- (nothing changes, no row) or merged into a digest (no row; the caller says LeaseLost).
WITH delivered AS (
    UPDATE messages
       SET status = 'delivered', delivered_at = %(now)s, updated_at = %(now)s,
           reply = %(reply)s::jsonb, attempts = attempts + 1, tries = tries + 1,
           lease_token = NULL, lease_until = NULL
     WHERE id = %(id)s AND status NOT IN ('delivered', 'digested')
    RETURNING *
), history AS (
    INSERT INTO attempts (message_id, number, target, outcome, started_at, finished_at)
    SELECT id, tries, target, 'delivered', claimed_at, %(now)s FROM delivered
)
SELECT * FROM delivered;

-- name: schedule_retry
-- Only while this claim holds the lease; no row otherwise (the caller says why).
WITH retried AS (
    UPDATE messages
       SET status = 'queued', due_at = %(retry_at)s, updated_at = %(now)s,
           attempts = attempts + 1, tries = tries + 1,
           last_error = %(error)s, last_errcode = %(errcode)s,
           lease_token = NULL, lease_until = NULL
     WHERE id = %(id)s AND status = 'sending' AND lease_token = %(token)s
    RETURNING *
), history AS (
    INSERT INTO attempts (message_id, number, target, outcome, started_at, finished_at,
                          errcode, error)
    SELECT id, tries, target, 'retry', claimed_at, %(now)s, %(errcode)s, %(error)s
      FROM retried
), noted AS (
    INSERT INTO target_errors (target, error, errcode, at)
    SELECT target, %(error)s, %(errcode)s, %(now)s FROM retried
    ON CONFLICT (target) DO UPDATE
       SET error = excluded.error, errcode = excluded.errcode, at = excluded.at
)
SELECT * FROM retried;

-- name: fail_message
-- A dead letter, only while this claim holds the lease.
WITH failed AS (
    UPDATE messages
       SET status = 'failed', updated_at = %(now)s,
           attempts = attempts + 1, tries = tries + 1,
           last_error = %(error)s, last_errcode = %(errcode)s,
           lease_token = NULL, lease_until = NULL
     WHERE id = %(id)s AND status = 'sending' AND lease_token = %(token)s
    RETURNING *
), history AS (
    INSERT INTO attempts (message_id, number, target, outcome, started_at, finished_at,
                          errcode, error)
    SELECT id, tries, target, 'failed', claimed_at, %(now)s, %(errcode)s, %(error)s
      FROM failed
), noted AS (
    INSERT INTO target_errors (target, error, errcode, at)
    SELECT target, %(error)s, %(errcode)s, %(now)s FROM failed
    ON CONFLICT (target) DO UPDATE
       SET error = excluded.error, errcode = excluded.errcode, at = excluded.at
)
SELECT * FROM failed;

-- name: lease_state
-- Why a settle changed nothing: the message's status and lease now (no row: unknown id).
SELECT status, lease_token FROM messages WHERE id = %(id)s;

-- name: release_claims
-- Back in the queue untried, keeping their place in line; lost leases are skipped.
UPDATE messages AS m
   SET status = 'queued', updated_at = %(now)s, lease_token = NULL, lease_until = NULL
  FROM unnest(%(ids)s::text[], %(tokens)s::text[]) AS held(id, token)
 WHERE m.id = held.id AND m.status = 'sending' AND m.lease_token = held.token
RETURNING m.id;

-- name: requeue_expired
-- Leases that ran out, back in the queue at their old due time (they keep their place in line),
-- each with the lost attempt in its history. SKIP LOCKED: a message being settled right now is
-- not expired, and two instances requeueing at once share the work instead of waiting.
WITH expired AS (
    SELECT seq FROM messages
     WHERE status = 'sending' AND lease_until <= %(now)s
     ORDER BY seq
       FOR UPDATE SKIP LOCKED
), requeued AS (
    UPDATE messages AS m
       SET status = 'queued', updated_at = %(now)s,
           attempts = attempts + 1, tries = tries + 1,
           last_error = %(error)s, last_errcode = NULL,
           lease_token = NULL, lease_until = NULL
      FROM expired
     WHERE m.seq = expired.seq
    RETURNING m.*
), history AS (
    INSERT INTO attempts (message_id, number, target, outcome, started_at, finished_at, error)
    SELECT id, tries, target, 'lease_expired', claimed_at, %(now)s, %(error)s FROM requeued
), noted AS (
    -- One row per target (an upsert may not touch a row twice), in a fixed order so that
    -- concurrent requeues cannot deadlock on these rows.
    INSERT INTO target_errors (target, error, errcode, at)
    SELECT DISTINCT target, %(error)s, NULL::jsonb, %(now)s FROM requeued ORDER BY target
    ON CONFLICT (target) DO UPDATE
       SET error = excluded.error, errcode = excluded.errcode, at = excluded.at
)
SELECT id FROM requeued ORDER BY seq;

-- name: retry_message
-- A dead letter back in the queue with a fresh attempt count; no row unless it is failed.
UPDATE messages
   SET status = 'queued', due_at = %(due_at)s, updated_at = %(now)s, attempts = 0
 WHERE id = %(id)s AND status = 'failed'
RETURNING *;

-- name: cancel_message
-- A queued message held back before it was sent: a dead letter, no attempt counted; no row
-- unless it is queued.
UPDATE messages
   SET status = 'failed', updated_at = %(now)s, last_error = %(error)s,
       last_errcode = %(errcode)s
 WHERE id = %(id)s AND status = 'queued'
RETURNING *;

-- name: note_recall
-- The recall recorded in the reply; no row unless the message is delivered.
UPDATE messages
   SET reply = coalesce(reply, '{}'::jsonb) || jsonb_build_object('recall', %(recall)s::jsonb)
 WHERE id = %(id)s AND status = 'delivered'
RETURNING *;

-- name: failed_matching
-- The dead letters a bulk retry takes, oldest first (the store contract's DeadLetterFilter). A
-- failed message's updated_at is when it failed; jsonb keeps 300001 apart from "300001". A
-- cancelled message (recalled while queued) is taken only when asked for by its errcode.
SELECT id FROM messages
 WHERE status = 'failed'
   AND (%(target)s::text IS NULL OR target = %(target)s)
   AND (%(errcode)s::jsonb IS NULL OR last_errcode = %(errcode)s::jsonb)
   AND (last_errcode IS DISTINCT FROM '"cancelled"'::jsonb
        OR %(errcode)s::jsonb IS NOT DISTINCT FROM '"cancelled"'::jsonb)
   AND (%(error)s::text IS NULL OR strpos(last_error, %(error)s) > 0)
   AND (%(failed_since)s::double precision IS NULL OR updated_at >= %(failed_since)s)
   AND (%(failed_before)s::double precision IS NULL OR updated_at < %(failed_before)s)
 ORDER BY seq
 LIMIT %(limit)s;

-- name: retry_many
-- Those dead letters back in the queue with a fresh attempt count, locked while they change.
WITH chosen AS (
    SELECT id FROM messages
     WHERE status = 'failed'
       AND (%(target)s::text IS NULL OR target = %(target)s)
       AND (%(errcode)s::jsonb IS NULL OR last_errcode = %(errcode)s::jsonb)
       AND (last_errcode IS DISTINCT FROM '"cancelled"'::jsonb
            OR %(errcode)s::jsonb IS NOT DISTINCT FROM '"cancelled"'::jsonb)
       AND (%(error)s::text IS NULL OR strpos(last_error, %(error)s) > 0)
       AND (%(failed_since)s::double precision IS NULL OR updated_at >= %(failed_since)s)
       AND (%(failed_before)s::double precision IS NULL OR updated_at < %(failed_before)s)
     ORDER BY seq
     LIMIT %(limit)s
       FOR UPDATE
)
UPDATE messages
   SET status = 'queued', due_at = %(due_at)s, updated_at = %(now)s, attempts = 0
  FROM chosen
 WHERE messages.id = chosen.id
RETURNING messages.id, messages.seq;

-- name: lock_originals
-- A digest's originals, locked until the digest commits (in id order: no deadlock between
-- two digests). A row being claimed is waited for, then seen as it now is.
SELECT * FROM messages WHERE id = ANY(%(ids)s::text[]) ORDER BY id FOR UPDATE;

-- name: insert_digest
WITH digest AS (
    INSERT INTO messages (id, target, kind, payload, status, created_at, updated_at, due_at,
                          carries)
    VALUES (%(id)s, %(target)s, %(kind)s, %(payload)s, 'queued', %(now)s, %(now)s,
            %(due_at)s, %(carries)s)
    RETURNING *
), merged AS (
    UPDATE messages
       SET status = 'digested', digest_id = %(id)s, updated_at = %(now)s
     WHERE id = ANY(%(originals)s::text[])
)
SELECT * FROM digest;

-- name: list_attempts
SELECT * FROM attempts WHERE message_id = %(message_id)s ORDER BY number;

-- name: digest_originals
SELECT * FROM messages WHERE digest_id = %(digest_id)s ORDER BY seq;

-- name: list_messages
-- Newest first; %(before)s is the cursor's position (the seq after the last page).
SELECT * FROM messages
 WHERE (%(status)s::text IS NULL OR status = %(status)s)
   AND (%(target)s::text IS NULL OR target = %(target)s)
   AND seq < %(before)s
 ORDER BY seq DESC
 LIMIT %(limit)s;

-- name: list_queued
SELECT * FROM messages
 WHERE target = %(target)s AND status = 'queued'
   AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
 ORDER BY due_at, seq
 LIMIT %(limit)s;

-- name: next_due
SELECT min(due_at) FROM messages WHERE status = 'queued';

-- name: next_due_for_target
SELECT min(due_at) FROM messages WHERE target = %(target)s AND status = 'queued';

-- name: stats
-- One statement, so one snapshot: the backlog, recent deliveries and last errors agree.
SELECT target, status AS figure, count(*) AS count, min(due_at) AS oldest_due,
       NULL::text AS error, NULL::jsonb AS errcode, NULL::double precision AS at
  FROM messages
 WHERE status IN ('queued', 'sending', 'failed')
 GROUP BY target, status
UNION ALL
SELECT target, 'delivered_recent', count(*), NULL, NULL, NULL, NULL
  FROM messages
 WHERE status = 'delivered' AND delivered_at >= %(since)s
 GROUP BY target
UNION ALL
SELECT target, 'error', 0, NULL, error, errcode, at FROM target_errors;

-- name: prune
-- At most %(batch)s delivered messages (with the originals their digests carried and the
-- history of both) per statement, so a large prune never holds a long transaction.
WITH digests AS (
    SELECT id FROM messages
     WHERE status = 'delivered' AND delivered_at < %(before)s
     LIMIT %(batch)s
), doomed AS (
    SELECT id FROM digests
    UNION ALL
    SELECT id FROM messages WHERE digest_id IN (SELECT id FROM digests)
), history AS (
    DELETE FROM attempts WHERE message_id IN (SELECT id FROM doomed)
), gone AS (
    DELETE FROM messages WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT count(*) FROM gone;

-- name: probe_lock
-- Readiness: take the lock every enqueue takes (waiting at most lock_timeout) ...
LOCK TABLE messages IN ROW EXCLUSIVE MODE;

-- name: probe_write
-- ... and write a row (ping rolls it back; probe deletes it and commits).
INSERT INTO readiness_probe (at) VALUES (%(now)s);

-- name: probe_clear
-- The probe's rows gone again, in the transaction that wrote them: nothing stays to be seen.
DELETE FROM readiness_probe;

-- name: notify
SELECT pg_notify(%(channel)s, %(payload)s);
