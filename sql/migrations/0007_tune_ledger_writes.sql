-- 0007: fewer pages changed per contact a run writes.
--
-- A run writes a contact's ledger row and history rows when its local side, Selzy's view or its
-- decision changes: a 1% change run, 1% of the contacts spread over the whole tables. What such
-- a write costs is mostly the pages it changes, each one's first change after a checkpoint a
-- full-page image in the WAL, and the pages it must read first (bench/README.md has the
-- figures).
--
-- The ledger: at the default fillfactor of 100 the pages that inserts and earlier updates
-- filled have no room left, so each update of a row is written to another page and adds an
-- entry to the primary key: three pages changed per contact. With 15% of every page kept free
-- the update stays on its page (a HOT update: no index entry), one page. Pages written from now
-- on keep the room; the existing ones get it as they are rewritten.
ALTER TABLE syncd.contacts SET (fillfactor = 85);

-- The history's index by contact: (job, key) instead of (job, key, id). Without the unique id
-- in it, B-tree deduplication keeps one entry per contact with the list of its rows, a third of
-- the size (225 MB -> 74 MB for 3M rows of 1M contacts), so a run's inserts change and read
-- fewer leaf pages. A contact's rows are still found by it (`syncd explain` sorts the few by id).
DROP INDEX syncd.history_job_key_idx;
CREATE INDEX history_job_key_idx ON syncd.history (job, key);
