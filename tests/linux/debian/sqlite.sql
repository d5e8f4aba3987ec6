-- Run by Debian's sqlite3 on a database file under /tmp (tests/linux
-- suite, [[debian]] "sqlite"): create, 10 000 rows inserted in one
-- transaction, queries, an index, update, a rolled-back delete.
.bail on
.headers off
.mode list
.separator =
DROP TABLE IF EXISTS t;
DROP TABLE IF EXISTS parts;
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, v INTEGER, w REAL);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000)
INSERT INTO t(name, v, w) SELECT 'row' || x, (x * 7919) % 10007, x / 8.0 FROM c;
INSERT INTO t(name, v, w) VALUES ('extra', -1, 0.5);
COMMIT;
SELECT 'rows', count(*) FROM t;
SELECT 'sum_v', sum(v) FROM t;
SELECT 'min_max', min(v) || ',' || max(v) FROM t;
SELECT 'avg_w', printf('%.4f', avg(w)) FROM t;
SELECT 'bucket' || (v % 5), count(*) FROM t WHERE v >= 0 GROUP BY v % 5 ORDER BY v % 5;
CREATE INDEX t_v ON t(v);
SELECT 'by_index', group_concat(name, ',') FROM (SELECT name FROM t WHERE v BETWEEN 100 AND 110 ORDER BY v);
SELECT 'top3', group_concat(id, ',') FROM (SELECT id FROM t ORDER BY v DESC, id LIMIT 3);
BEGIN;
UPDATE t SET w = w * 2 WHERE id % 1000 = 0;
COMMIT;
SELECT 'updated_w', printf('%.1f', sum(w)) FROM t WHERE id % 1000 = 0;
BEGIN;
DELETE FROM t WHERE id > 5000;
SELECT 'in_tx', count(*) FROM t;
ROLLBACK;
SELECT 'after_rollback', count(*) FROM t;
CREATE TABLE parts(id INTEGER PRIMARY KEY, t_id INTEGER REFERENCES t(id), label TEXT);
INSERT INTO parts(t_id, label) SELECT id, upper(name) FROM t WHERE id <= 3;
SELECT 'join', group_concat(p.label || ':' || t.v, ',') FROM parts p JOIN t ON t.id = p.t_id;
SELECT 'like', count(*) FROM t WHERE name LIKE 'row99%';
SELECT 'integrity', * FROM pragma_integrity_check;
SELECT 'page_count_positive', (SELECT page_count FROM pragma_page_count) > 10;
