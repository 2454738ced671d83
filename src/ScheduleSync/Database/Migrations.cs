using Npgsql;

namespace ScheduleSync.Database;

/// <summary>
/// Versioned schema migrations, applied at start-up in one transaction under an advisory lock, so two processes
/// starting at once apply each migration exactly once.
/// </summary>
internal static class Migrations
{
    private const long MigrationLockKey = 0x5CED_5_1C_0001;

    private static readonly (int Version, string Name, string Sql)[] All =
    [
        (1, "tasks, audit, sync state, change trigger", """
            CREATE TABLE scheduled_tasks (
                id              text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,127}$'),
                name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
                description     text CHECK (length(description) <= 2000),
                schedule        text NOT NULL,
                timezone        text NOT NULL,
                command         text NOT NULL CHECK (length(command) BETWEEN 1 AND 4000),
                args            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(args) = 'object'),
                enabled         boolean NOT NULL DEFAULT true,
                timeout_seconds integer CHECK (timeout_seconds > 0),
                max_retries     integer NOT NULL DEFAULT 0 CHECK (max_retries BETWEEN 0 AND 100),
                tags            text[] NOT NULL DEFAULT '{}',
                version         bigint NOT NULL DEFAULT 1,
                created_at      timestamptz NOT NULL DEFAULT now(),
                updated_at      timestamptz NOT NULL DEFAULT now(),
                updated_by      text,
                content_hash    text
            );

            -- One row: the database-wide change counter (bumped by every statement that changes tasks, in the
            -- changing transaction, so a reader that saw value n has seen every change up to n) and the state of
            -- the last sync, which makes an unchanged sync a no-op.
            CREATE TABLE sync_state (
                id                     integer PRIMARY KEY CHECK (id = 1),
                change_counter         bigint NOT NULL DEFAULT 0,
                synced_change_counter  bigint,
                synced_file_checksum   text,
                synced_at              timestamptz
            );
            INSERT INTO sync_state (id) VALUES (1);

            CREATE TABLE sync_runs (
                id               bigserial PRIMARY KEY,
                trigger          text NOT NULL,
                started_at       timestamptz NOT NULL DEFAULT now(),
                finished_at      timestamptz,
                status           text NOT NULL DEFAULT 'running',
                inserts          integer NOT NULL DEFAULT 0,
                updates          integer NOT NULL DEFAULT 0,
                deletes          integer NOT NULL DEFAULT 0,
                exports          integer NOT NULL DEFAULT 0,
                conflicts        integer NOT NULL DEFAULT 0,
                checksum_before  text,
                checksum_after   text,
                error            text
            );

            CREATE TABLE task_audit (
                id           bigserial PRIMARY KEY,
                task_id      text NOT NULL,
                action       text NOT NULL CHECK (action IN ('create', 'update', 'delete')),
                source       text NOT NULL,
                actor        text NOT NULL,
                before       jsonb,
                after        jsonb,
                at           timestamptz NOT NULL DEFAULT now(),
                sync_run_id  bigint REFERENCES sync_runs (id)
            );
            CREATE INDEX task_audit_task ON task_audit (task_id, id);

            CREATE TABLE sync_base (
                task_id       text PRIMARY KEY,
                content       jsonb NOT NULL,
                content_hash  text NOT NULL,
                updated_at    timestamptz NOT NULL DEFAULT now()
            );

            CREATE TABLE sync_conflicts (
                id            bigserial PRIMARY KEY,
                task_id       text NOT NULL,
                base          jsonb,
                yaml          jsonb,
                db            jsonb,
                status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
                detected_at   timestamptz NOT NULL DEFAULT now(),
                sync_run_id   bigint REFERENCES sync_runs (id),
                choice        text CHECK (choice IN ('keep_yaml', 'keep_db', 'merge', 'auto_closed')),
                result        jsonb,
                resolved_by   text,
                resolved_at   timestamptz
            );
            CREATE UNIQUE INDEX sync_conflicts_one_open_per_task ON sync_conflicts (task_id) WHERE status = 'open';

            -- Every change, through ScheduleSync or plain SQL, bumps version and updated_at. A change that did not
            -- also set content_hash (plain SQL) clears it, so readers recompute it from the row.
            CREATE FUNCTION scheduled_tasks_before_write() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    NEW.version := 1;
                    NEW.created_at := now();
                    NEW.updated_at := now();
                    IF NEW.updated_by IS NULL THEN
                        NEW.updated_by := coalesce(nullif(current_setting('schedsync.actor', true), ''), 'sql:' || session_user);
                    END IF;
                    RETURN NEW;
                END IF;
                IF (NEW.id, NEW.name, NEW.description, NEW.schedule, NEW.timezone, NEW.command, NEW.args, NEW.enabled,
                    NEW.timeout_seconds, NEW.max_retries, NEW.tags)
                   IS NOT DISTINCT FROM
                   (OLD.id, OLD.name, OLD.description, OLD.schedule, OLD.timezone, OLD.command, OLD.args, OLD.enabled,
                    OLD.timeout_seconds, OLD.max_retries, OLD.tags) THEN
                    NEW.version := OLD.version;
                    NEW.updated_at := OLD.updated_at;
                    NEW.updated_by := OLD.updated_by;
                    NEW.content_hash := OLD.content_hash;
                    RETURN NEW;
                END IF;
                NEW.version := OLD.version + 1;
                NEW.created_at := OLD.created_at;
                NEW.updated_at := now();
                IF NEW.content_hash IS NOT DISTINCT FROM OLD.content_hash THEN
                    NEW.content_hash := NULL;
                END IF;
                IF NEW.updated_by IS NOT DISTINCT FROM OLD.updated_by THEN
                    NEW.updated_by := coalesce(nullif(current_setting('schedsync.actor', true), ''), 'sql:' || session_user);
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER scheduled_tasks_before_write BEFORE INSERT OR UPDATE ON scheduled_tasks
                FOR EACH ROW EXECUTE FUNCTION scheduled_tasks_before_write();

            -- Audit, change counter and NOTIFY, once per statement and set-based, so bulk sync writes stay cheap.
            -- The writer names itself with set_config('schedsync.source' / 'schedsync.actor' / 'schedsync.sync_run');
            -- a change made with plain SQL is audited as source 'sql' by its database user.
            CREATE FUNCTION scheduled_tasks_after_statement() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                changed bigint;
                counter bigint;
                src text := coalesce(nullif(current_setting('schedsync.source', true), ''), 'sql');
                who text := coalesce(nullif(current_setting('schedsync.actor', true), ''), 'sql:' || session_user);
                run bigint := nullif(current_setting('schedsync.sync_run', true), '')::bigint;
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                    SELECT n.id, 'create', src, who, NULL, to_jsonb(n) - 'created_at' - 'updated_at', run FROM new_rows n;
                ELSIF TG_OP = 'UPDATE' THEN
                    INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                    SELECT n.id, 'update', src, who, to_jsonb(o) - 'created_at' - 'updated_at', to_jsonb(n) - 'created_at' - 'updated_at', run
                    FROM new_rows n JOIN old_rows o ON o.id = n.id
                    WHERE n.version <> o.version;
                ELSE
                    INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                    SELECT o.id, 'delete', src, who, to_jsonb(o) - 'created_at' - 'updated_at', NULL, run FROM old_rows o;
                END IF;
                GET DIAGNOSTICS changed = ROW_COUNT;
                IF changed > 0 THEN
                    UPDATE sync_state SET change_counter = change_counter + 1 WHERE id = 1 RETURNING change_counter INTO counter;
                    PERFORM pg_notify('schedsync_changes', counter::text);
                END IF;
                RETURN NULL;
            END $$;
            CREATE TRIGGER scheduled_tasks_after_insert AFTER INSERT ON scheduled_tasks
                REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION scheduled_tasks_after_statement();
            CREATE TRIGGER scheduled_tasks_after_update AFTER UPDATE ON scheduled_tasks
                REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION scheduled_tasks_after_statement();
            CREATE TRIGGER scheduled_tasks_after_delete AFTER DELETE ON scheduled_tasks
                REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION scheduled_tasks_after_statement();

            CREATE FUNCTION scheduled_tasks_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE counter bigint;
            BEGIN
                UPDATE sync_state SET change_counter = change_counter + 1 WHERE id = 1 RETURNING change_counter INTO counter;
                PERFORM pg_notify('schedsync_changes', counter::text);
                RETURN NULL;
            END $$;
            CREATE TRIGGER scheduled_tasks_after_truncate AFTER TRUNCATE ON scheduled_tasks
                FOR EACH STATEMENT EXECUTE FUNCTION scheduled_tasks_after_truncate();
            """),
        (2, "audit and count id renames made with plain SQL", """
            -- An UPDATE that changes a task's id has no old row with the same id: audit it as a delete of the old id
            -- and a create of the new one, so the change counter moves and the rename reaches the file.
            CREATE OR REPLACE FUNCTION scheduled_tasks_after_statement() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                changed bigint;
                counter bigint;
                src text := coalesce(nullif(current_setting('schedsync.source', true), ''), 'sql');
                who text := coalesce(nullif(current_setting('schedsync.actor', true), ''), 'sql:' || session_user);
                run bigint := nullif(current_setting('schedsync.sync_run', true), '')::bigint;
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                    SELECT n.id, 'create', src, who, NULL, to_jsonb(n) - 'created_at' - 'updated_at', run FROM new_rows n;
                ELSIF TG_OP = 'UPDATE' THEN
                    INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                    SELECT n.id, 'update', src, who, to_jsonb(o) - 'created_at' - 'updated_at', to_jsonb(n) - 'created_at' - 'updated_at', run
                    FROM new_rows n JOIN old_rows o ON o.id = n.id
                    WHERE n.version <> o.version
                    UNION ALL
                    SELECT o.id, 'delete', src, who, to_jsonb(o) - 'created_at' - 'updated_at', NULL, run
                    FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id)
                    UNION ALL
                    SELECT n.id, 'create', src, who, NULL, to_jsonb(n) - 'created_at' - 'updated_at', run
                    FROM new_rows n WHERE NOT EXISTS (SELECT 1 FROM old_rows o WHERE o.id = n.id);
                ELSE
                    INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                    SELECT o.id, 'delete', src, who, to_jsonb(o) - 'created_at' - 'updated_at', NULL, run FROM old_rows o;
                END IF;
                GET DIAGNOSTICS changed = ROW_COUNT;
                IF changed > 0 THEN
                    UPDATE sync_state SET change_counter = change_counter + 1 WHERE id = 1 RETURNING change_counter INTO counter;
                    PERFORM pg_notify('schedsync_changes', counter::text);
                END IF;
                RETURN NULL;
            END $$;
            """),
        (3, "sync memory: refused deletions, recorded exports, default zone; defaults for plain-SQL inserts", """
            -- A refused mass deletion stays refused while the file is the one it was refused for (SPEC §4); the file's
            -- defaults.timezone as last seen by a sync is the default of a row inserted with plain SQL.
            ALTER TABLE sync_state
                ADD COLUMN refused_file_checksum text,
                ADD COLUMN refused_task_ids text[] NOT NULL DEFAULT '{}',
                ADD COLUMN default_timezone text;

            -- The versions a sync run is about to write to the file, committed before the write: after a crash between
            -- the write and the run's commit, the next run recognises its own export. Emptied by each completed run.
            CREATE TABLE sync_exports (
                task_id       text NOT NULL,
                content_hash  text NOT NULL,
                recorded_at   timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (task_id, content_hash)
            );

            -- A row written with plain SQL gets the defaults a task in the file gets: name = id, the file's default zone.
            -- Named to fire before scheduled_tasks_before_write (same-event triggers fire in name order).
            CREATE FUNCTION scheduled_tasks_apply_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.name IS NULL THEN
                    NEW.name := NEW.id;
                END IF;
                IF NEW.timezone IS NULL THEN
                    NEW.timezone := coalesce((SELECT default_timezone FROM sync_state WHERE id = 1), 'UTC');
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER scheduled_tasks_apply_defaults BEFORE INSERT OR UPDATE ON scheduled_tasks
                FOR EACH ROW EXECUTE FUNCTION scheduled_tasks_apply_defaults();
            """),
        (4, "event log", """
            -- The event log of SPEC §6. Events are numbered by a counter in sync_state, not by a SEQUENCE: taking the
            -- next number locks that row until commit, so numbers are handed out in commit order and without holes
            -- (a rolled-back transaction gives its numbers back). A reader that has seen seq n has seen every event
            -- up to n. Writers already serialise on that row (the change counter), so this adds no new waiting.
            ALTER TABLE sync_state ADD COLUMN event_seq bigint NOT NULL DEFAULT 0;

            CREATE TABLE sync_events (
                seq      bigint PRIMARY KEY,
                type     text NOT NULL,
                at       timestamptz NOT NULL DEFAULT now(),
                payload  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object')
            );

            -- Appends events in the caller's transaction, numbered in order; one NOTIFY per transaction (equal
            -- payloads are delivered once). Returns the last seq, or NULL when there was nothing to append.
            CREATE FUNCTION sync_events_append(types text[], payloads jsonb[]) RETURNS bigint LANGUAGE plpgsql AS $$
            DECLARE
                n bigint := coalesce(cardinality(types), 0);
                last bigint;
            BEGIN
                IF n = 0 THEN RETURN NULL; END IF;
                IF cardinality(payloads) IS DISTINCT FROM n THEN
                    RAISE EXCEPTION 'sync_events_append: % types but % payloads', n, cardinality(payloads);
                END IF;
                UPDATE sync_state SET event_seq = event_seq + n WHERE id = 1 RETURNING event_seq INTO last;
                INSERT INTO sync_events (seq, type, payload)
                SELECT last - n + e.ord, e.type, e.payload FROM unnest(types, payloads) WITH ORDINALITY AS e(type, payload, ord);
                PERFORM pg_notify('schedsync_events', '');
                RETURN last;
            END $$;

            -- A task_changed event per changed row version, whoever changed it (API, sync, resolve, plain SQL), in one
            -- set-based append per statement, in the order the statement changed the rows (no sort: bulk imports);
            -- sync_events_append numbers them (its UPDATE of the counter waits for the row lock, so the numbers are
            -- right even when another writer committed meanwhile) and notifies.
            CREATE FUNCTION scheduled_tasks_events() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                src text := coalesce(nullif(current_setting('schedsync.source', true), ''), 'sql');
                changes jsonb[];
            BEGIN
                -- Each branch names only the transition tables its trigger declares.
                IF TG_OP = 'INSERT' THEN
                    SELECT array_agg(jsonb_build_object('id', n.id, 'action', 'created', 'version', n.version, 'source', src))
                    INTO changes FROM new_rows n;
                ELSIF TG_OP = 'UPDATE' THEN
                    -- Unchanged rows (the version stays) are no change; a changed id is a delete and a create.
                    SELECT array_agg(jsonb_build_object('id', c.id, 'action', c.action, 'version', c.version, 'source', src))
                    INTO changes FROM (
                        SELECT o.id, 'deleted' AS action, o.version FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id)
                        UNION ALL
                        SELECT n.id, 'created', n.version FROM new_rows n WHERE NOT EXISTS (SELECT 1 FROM old_rows o WHERE o.id = n.id)
                        UNION ALL
                        SELECT n.id, 'updated', n.version FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.version <> o.version
                    ) c;
                ELSE
                    SELECT array_agg(jsonb_build_object('id', o.id, 'action', 'deleted', 'version', o.version, 'source', src))
                    INTO changes FROM old_rows o;
                END IF;
                IF changes IS NOT NULL THEN
                    PERFORM sync_events_append(array_fill('task_changed'::text, ARRAY[cardinality(changes)]), changes);
                END IF;
                RETURN NULL;
            END $$;
            CREATE TRIGGER scheduled_tasks_events_insert AFTER INSERT ON scheduled_tasks
                REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION scheduled_tasks_events();
            CREATE TRIGGER scheduled_tasks_events_update AFTER UPDATE ON scheduled_tasks
                REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION scheduled_tasks_events();
            CREATE TRIGGER scheduled_tasks_events_delete AFTER DELETE ON scheduled_tasks
                REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION scheduled_tasks_events();

            -- TRUNCATE has no transition table: announce the deletions before the rows go.
            CREATE FUNCTION scheduled_tasks_events_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM sync_events_append(
                    array_agg('task_changed'::text ORDER BY id),
                    array_agg(jsonb_build_object('id', id, 'action', 'deleted', 'version', version,
                        'source', coalesce(nullif(current_setting('schedsync.source', true), ''), 'sql')) ORDER BY id))
                FROM scheduled_tasks;
                RETURN NULL;
            END $$;
            CREATE TRIGGER scheduled_tasks_events_truncate BEFORE TRUNCATE ON scheduled_tasks
                FOR EACH STATEMENT EXECUTE FUNCTION scheduled_tasks_events_truncate();
            """),
        (5, "replicas: base, sync state, conflicts and recorded exports per replica", """
            -- Several instances on one database (SPEC §8): each keeps its own copy of the file as a replica, with its
            -- own base, sync state, conflicts and recorded exports. The database (scheduled_tasks, the change counter,
            -- the event log) stays one.
            CREATE TABLE sync_replicas (
                name                   text PRIMARY KEY,
                created_at             timestamptz NOT NULL DEFAULT now(),
                synced_change_counter  bigint,
                synced_event_seq       bigint,
                synced_file_checksum   text,
                synced_at              timestamptz,
                refused_file_checksum  text,
                refused_task_ids       text[] NOT NULL DEFAULT '{}'
            );

            -- What one instance synced before this migration belongs to the replica named '' until the first replica
            -- that syncs adopts it (renames it to its own name; the keys below follow by ON UPDATE CASCADE), so
            -- nothing is imported or exported again.
            INSERT INTO sync_replicas (name, synced_change_counter, synced_file_checksum, synced_at, refused_file_checksum, refused_task_ids)
            SELECT '', synced_change_counter, synced_file_checksum, synced_at, refused_file_checksum, refused_task_ids FROM sync_state
            WHERE synced_at IS NOT NULL OR EXISTS (SELECT 1 FROM sync_base) OR EXISTS (SELECT 1 FROM sync_conflicts) OR EXISTS (SELECT 1 FROM sync_exports);
            ALTER TABLE sync_state DROP COLUMN synced_change_counter, DROP COLUMN synced_file_checksum, DROP COLUMN synced_at,
                DROP COLUMN refused_file_checksum, DROP COLUMN refused_task_ids;

            ALTER TABLE sync_base ADD COLUMN replica text NOT NULL DEFAULT '';
            ALTER TABLE sync_base ALTER COLUMN replica DROP DEFAULT,
                DROP CONSTRAINT sync_base_pkey, ADD PRIMARY KEY (replica, task_id),
                ADD FOREIGN KEY (replica) REFERENCES sync_replicas (name) ON UPDATE CASCADE ON DELETE CASCADE;

            ALTER TABLE sync_exports ADD COLUMN replica text NOT NULL DEFAULT '';
            ALTER TABLE sync_exports ALTER COLUMN replica DROP DEFAULT,
                DROP CONSTRAINT sync_exports_pkey, ADD PRIMARY KEY (replica, task_id, content_hash),
                ADD FOREIGN KEY (replica) REFERENCES sync_replicas (name) ON UPDATE CASCADE ON DELETE CASCADE;

            ALTER TABLE sync_conflicts ADD COLUMN replica text NOT NULL DEFAULT '';
            ALTER TABLE sync_conflicts ALTER COLUMN replica DROP DEFAULT,
                ADD FOREIGN KEY (replica) REFERENCES sync_replicas (name) ON UPDATE CASCADE ON DELETE CASCADE;
            DROP INDEX sync_conflicts_one_open_per_task;
            CREATE UNIQUE INDEX sync_conflicts_one_open_per_task ON sync_conflicts (replica, task_id) WHERE status = 'open';

            -- Runs stay as history when a replica is forgotten: the name only, no key.
            ALTER TABLE sync_runs ADD COLUMN replica text;
            UPDATE sync_runs SET replica = '';
            CREATE INDEX sync_runs_replica ON sync_runs (replica, id);
            """),
        (6, "bulk writes by a sync: the statement triggers skip while it records its inserts itself", """
            -- A sync that imports new tasks writes them and their base rows by binary COPY and records their audit rows,
            -- the change counter, its NOTIFY and the task_changed events itself, set-based (scheduled_tasks_record_inserts),
            -- exactly as these triggers would. While it copies, its transaction-local setting schedsync.bulk_write is on
            -- and the statement triggers skip; every other writer (the API, plain SQL, the sync's updates) is unchanged.
            -- The skip covers INSERTs only, and only for a member of the table's owner role: the owner can already
            -- disable triggers (ALTER TABLE), so the setting gives nobody a new way to write tasks unaudited; any other
            -- database user who sets it is audited as before.
            CREATE FUNCTION scheduled_tasks_bulk_write() RETURNS boolean LANGUAGE sql STABLE AS $f$
                SELECT current_setting('schedsync.bulk_write', true) = 'on'
                   AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'scheduled_tasks'::regclass), 'MEMBER')
            $f$;
            CREATE OR REPLACE FUNCTION scheduled_tasks_after_statement() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                changed bigint;
                counter bigint;
                src text := coalesce(nullif(current_setting('schedsync.source', true), ''), 'sql');
                who text := coalesce(nullif(current_setting('schedsync.actor', true), ''), 'sql:' || session_user);
                run bigint := nullif(current_setting('schedsync.sync_run', true), '')::bigint;
            BEGIN
                IF TG_OP = 'INSERT' AND scheduled_tasks_bulk_write() THEN RETURN NULL; END IF;
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                    SELECT n.id, 'create', src, who, NULL, to_jsonb(n) - 'created_at' - 'updated_at', run FROM new_rows n;
                ELSIF TG_OP = 'UPDATE' THEN
                    INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                    SELECT n.id, 'update', src, who, to_jsonb(o) - 'created_at' - 'updated_at', to_jsonb(n) - 'created_at' - 'updated_at', run
                    FROM new_rows n JOIN old_rows o ON o.id = n.id
                    WHERE n.version <> o.version
                    UNION ALL
                    SELECT o.id, 'delete', src, who, to_jsonb(o) - 'created_at' - 'updated_at', NULL, run
                    FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id)
                    UNION ALL
                    SELECT n.id, 'create', src, who, NULL, to_jsonb(n) - 'created_at' - 'updated_at', run
                    FROM new_rows n WHERE NOT EXISTS (SELECT 1 FROM old_rows o WHERE o.id = n.id);
                ELSE
                    INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                    SELECT o.id, 'delete', src, who, to_jsonb(o) - 'created_at' - 'updated_at', NULL, run FROM old_rows o;
                END IF;
                GET DIAGNOSTICS changed = ROW_COUNT;
                IF changed > 0 THEN
                    UPDATE sync_state SET change_counter = change_counter + 1 WHERE id = 1 RETURNING change_counter INTO counter;
                    PERFORM pg_notify('schedsync_changes', counter::text);
                END IF;
                RETURN NULL;
            END $$;

            CREATE OR REPLACE FUNCTION scheduled_tasks_events() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                src text := coalesce(nullif(current_setting('schedsync.source', true), ''), 'sql');
                changes jsonb[];
            BEGIN
                IF TG_OP = 'INSERT' AND scheduled_tasks_bulk_write() THEN RETURN NULL; END IF;
                -- Each branch names only the transition tables its trigger declares.
                IF TG_OP = 'INSERT' THEN
                    SELECT array_agg(jsonb_build_object('id', n.id, 'action', 'created', 'version', n.version, 'source', src))
                    INTO changes FROM new_rows n;
                ELSIF TG_OP = 'UPDATE' THEN
                    -- Unchanged rows (the version stays) are no change; a changed id is a delete and a create.
                    SELECT array_agg(jsonb_build_object('id', c.id, 'action', c.action, 'version', c.version, 'source', src))
                    INTO changes FROM (
                        SELECT o.id, 'deleted' AS action, o.version FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id)
                        UNION ALL
                        SELECT n.id, 'created', n.version FROM new_rows n WHERE NOT EXISTS (SELECT 1 FROM old_rows o WHERE o.id = n.id)
                        UNION ALL
                        SELECT n.id, 'updated', n.version FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.version <> o.version
                    ) c;
                ELSE
                    SELECT array_agg(jsonb_build_object('id', o.id, 'action', 'deleted', 'version', o.version, 'source', src))
                    INTO changes FROM old_rows o;
                END IF;
                IF changes IS NOT NULL THEN
                    PERFORM sync_events_append(array_fill('task_changed'::text, ARRAY[cardinality(changes)]), changes);
                END IF;
                RETURN NULL;
            END $$;

            -- What the statement triggers record for a plain INSERT of these rows (in this order), for a writer that
            -- inserted them with the triggers skipped: an audit row each, one change-counter step with its NOTIFY, a
            -- task_changed event each.
            CREATE FUNCTION scheduled_tasks_record_inserts(ids text[], src text, who text, run bigint) RETURNS void LANGUAGE plpgsql AS $$
            DECLARE
                changed bigint;
                counter bigint;
            BEGIN
                INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                SELECT t.id, 'create', src, who, NULL, to_jsonb(t) - 'created_at' - 'updated_at', run
                FROM unnest(ids) WITH ORDINALITY AS u(id, ord) JOIN scheduled_tasks t ON t.id = u.id ORDER BY u.ord;
                GET DIAGNOSTICS changed = ROW_COUNT;
                IF changed = 0 THEN RETURN; END IF;
                UPDATE sync_state SET change_counter = change_counter + 1 WHERE id = 1 RETURNING change_counter INTO counter;
                PERFORM pg_notify('schedsync_changes', counter::text);
                PERFORM sync_events_append(array_fill('task_changed'::text, ARRAY[changed::int]),
                    ARRAY(SELECT jsonb_build_object('id', t.id, 'action', 'created', 'version', t.version, 'source', src)
                          FROM unnest(ids) WITH ORDINALITY AS u(id, ord) JOIN scheduled_tasks t ON t.id = u.id ORDER BY u.ord));
            END $$;
            """),
    ];

    public static int Latest => All[^1].Version;

    /// <summary>How many migrations there are (versions may have gaps while branches are merged).</summary>
    public static int Count => All.Length;

    /// <summary>Applies every migration not yet applied (up to <paramref name="upTo"/>: an older schema, for upgrade tests); returns how many this call applied.</summary>
    public static async Task<int> ApplyAsync(NpgsqlDataSource dataSource, CancellationToken ct = default, int? upTo = null)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using (var command = new NpgsqlCommand("""
            SELECT pg_advisory_xact_lock(@key);
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """, connection, tx))
        {
            command.Parameters.AddWithValue("key", MigrationLockKey);
            await command.ExecuteNonQueryAsync(ct);
        }

        var applied = new HashSet<int>();
        await using (var command = new NpgsqlCommand("SELECT version FROM schema_migrations", connection, tx))
        await using (var reader = await command.ExecuteReaderAsync(ct))
            while (await reader.ReadAsync(ct))
                applied.Add(reader.GetInt32(0));

        var count = 0;
        foreach (var (version, name, sql) in All)
        {
            if (applied.Contains(version) || version > upTo) continue;
            await using (var command = new NpgsqlCommand(sql, connection, tx))
                await command.ExecuteNonQueryAsync(ct);
            await using (var command = new NpgsqlCommand("INSERT INTO schema_migrations (version, name) VALUES (@v, @n)", connection, tx))
            {
                command.Parameters.AddWithValue("v", version);
                command.Parameters.AddWithValue("n", name);
                await command.ExecuteNonQueryAsync(ct);
            }
            count++;
        }
        await tx.CommitAsync(ct);
        return count;
    }
}
