-- The SQLite outbox's queries, one per `-- name:` block, bound by name (:param) and never
-- formatted from data. Loaded by _sqlite_ops.py; the schema is in _sqlite_schema.py.

-- name: insert_message
-- A repeated idempotency key inserts nothing and returns no row (the caller then looks it up).
INSERT INTO messages (id, target, kind, payload, status, idempotency_key,
                      created_at, updated_at, due_at, carries)
VALUES (:id, :target, :kind, :payload, 'queued', :idempotency_key,
        :now, :now, :due_at, :carries)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id;

-- name: id_for_key
SELECT id FROM messages WHERE idempotency_key = :idempotency_key;

-- name: get_message
SELECT * FROM messages WHERE id = :id;

-- name: claim_due
-- Oldest due first across targets (index messages_due). RETURNING gives no order: callers sort.
UPDATE messages
   SET status = 'sending', lease_token = :token, lease_until = :lease_until,
       claimed_at = :now, updated_at = :now
 WHERE seq IN (SELECT seq FROM messages
                WHERE status = 'queued' AND due_at <= :now
                ORDER BY due_at, seq
                LIMIT :limit)
RETURNING *;

-- name: claim_due_for_target
-- The same for one target (index messages_target_due).
UPDATE messages
   SET status = 'sending', lease_token = :token, lease_until = :lease_until,
       claimed_at = :now, updated_at = :now
 WHERE seq IN (SELECT seq FROM messages
                WHERE target = :target AND status = 'queued' AND due_at <= :now
                ORDER BY due_at, seq
                LIMIT :limit)
RETURNING *;

-- name: mark_delivered
UPDATE messages
   SET status = 'delivered', delivered_at = :now, updated_at = :now, reply = :reply,
       attempts = attempts + 1, lease_token = NULL, lease_until = NULL, claimed_at = NULL
 WHERE id = :id
RETURNING *;

-- name: schedule_retry
UPDATE messages
   SET status = 'queued', due_at = :retry_at, updated_at = :now,
       attempts = attempts + 1, last_error = :error, last_errcode = :errcode,
       lease_token = NULL, lease_until = NULL, claimed_at = NULL
 WHERE id = :id
RETURNING *;

-- name: fail_message
UPDATE messages
   SET status = 'failed', updated_at = :now,
       attempts = attempts + 1, last_error = :error, last_errcode = :errcode,
       lease_token = NULL, lease_until = NULL, claimed_at = NULL
 WHERE id = :id
RETURNING *;

-- name: release_claim
UPDATE messages
   SET status = 'queued', updated_at = :now,
       lease_token = NULL, lease_until = NULL, claimed_at = NULL
 WHERE id = :id AND status = 'sending' AND lease_token = :token;

-- name: expired_leases
SELECT * FROM messages WHERE status = 'sending' AND lease_until <= :now ORDER BY seq;

-- name: requeue_message
-- A lease ran out: back in the queue at its old due time, so it keeps its place in line.
UPDATE messages
   SET status = 'queued', updated_at = :now,
       attempts = attempts + 1, last_error = :error, last_errcode = NULL,
       lease_token = NULL, lease_until = NULL, claimed_at = NULL
 WHERE id = :id;

-- name: retry_message
UPDATE messages
   SET status = 'queued', due_at = :due_at, updated_at = :now, attempts = 0
 WHERE id = :id
RETURNING *;

-- name: cancel_message
-- A queued message held back before it was sent: a dead letter, no attempt counted.
UPDATE messages
   SET status = 'failed', updated_at = :now, last_error = :error, last_errcode = :errcode
 WHERE id = :id
RETURNING *;

-- name: note_recall
UPDATE messages SET reply = :reply WHERE id = :id RETURNING *;

-- name: failed_matching
-- The dead letters a bulk retry takes, oldest first. A failed message's updated_at is when it
-- failed. typeof() keeps an int errcode from matching a string one (and the reverse). A
-- cancelled message (recalled while queued) is taken only when asked for by its errcode.
SELECT id FROM messages
 WHERE status = 'failed'
   AND (:target IS NULL OR target = :target)
   AND (:errcode IS NULL OR (last_errcode = :errcode AND typeof(last_errcode) = typeof(:errcode)))
   AND (last_errcode IS NOT 'cancelled' OR :errcode IS 'cancelled')
   AND (:error IS NULL OR instr(last_error, :error) > 0)
   AND (:failed_since IS NULL OR updated_at >= :failed_since)
   AND (:failed_before IS NULL OR updated_at < :failed_before)
 ORDER BY seq
 LIMIT :limit;

-- name: mark_digested
UPDATE messages
   SET status = 'digested', digest_id = :digest_id, updated_at = :now
 WHERE id = :id;

-- name: insert_attempt
INSERT INTO attempts (message_id, number, target, outcome, started_at, finished_at, errcode, error)
VALUES (:message_id,
        (SELECT coalesce(max(number), 0) + 1 FROM attempts WHERE message_id = :message_id),
        :target, :outcome, :started_at, :now, :errcode, :error);

-- name: note_target_error
INSERT INTO target_errors (target, error, errcode, at)
VALUES (:target, :error, :errcode, :now)
ON CONFLICT (target) DO UPDATE
   SET error = excluded.error, errcode = excluded.errcode, at = excluded.at;

-- name: list_attempts
SELECT * FROM attempts WHERE message_id = :message_id ORDER BY number;

-- name: digest_originals
SELECT * FROM messages WHERE digest_id = :digest_id ORDER BY seq;

-- name: list_messages
-- Newest first; :before is the cursor's position (the seq after the last page).
SELECT * FROM messages
 WHERE (:status IS NULL OR status = :status)
   AND (:target IS NULL OR target = :target)
   AND seq < :before
 ORDER BY seq DESC
 LIMIT :limit;

-- name: list_queued
-- :kinds is a JSON array of kinds, or NULL for every kind.
SELECT * FROM messages
 WHERE target = :target AND status = 'queued'
   AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
 ORDER BY due_at, seq
 LIMIT :limit;

-- name: next_due
SELECT min(due_at) FROM messages WHERE status = 'queued';

-- name: next_due_for_target
SELECT min(due_at) FROM messages WHERE target = :target AND status = 'queued';

-- name: stats_by_status
SELECT target, status, count(*) AS count, min(due_at) AS oldest_due
  FROM messages
 WHERE status IN ('queued', 'sending', 'failed')
 GROUP BY target, status;

-- name: stats_delivered
SELECT target, count(*) AS count
  FROM messages
 WHERE status = 'delivered' AND delivered_at >= :since
 GROUP BY target;

-- name: stats_errors
SELECT target, error, errcode, at FROM target_errors;

-- name: prune_attempts
DELETE FROM attempts
 WHERE message_id IN (SELECT id FROM messages
                       WHERE status = 'delivered' AND delivered_at < :before
                      UNION ALL
                      SELECT original.id
                        FROM messages AS original
                        JOIN messages AS digest ON original.digest_id = digest.id
                       WHERE digest.status = 'delivered' AND digest.delivered_at < :before);

-- name: prune_originals
DELETE FROM messages
 WHERE digest_id IN (SELECT id FROM messages
                      WHERE status = 'delivered' AND delivered_at < :before);

-- name: prune_delivered
DELETE FROM messages WHERE status = 'delivered' AND delivered_at < :before;

-- name: ping
SELECT count(*) FROM messages WHERE seq < 0;

-- name: probe_write
-- The readiness probe's scratch row: '' is no target's name, and the row is removed in the
-- same transaction, so no reader ever sees it; the page it dirtied is still written and
-- synced at the commit, which is what a full disk or an unwritable file refuses.
INSERT INTO target_errors (target, error, errcode, at) VALUES ('', 'readiness probe', NULL, :now);

-- name: probe_remove
DELETE FROM target_errors WHERE target = '';
