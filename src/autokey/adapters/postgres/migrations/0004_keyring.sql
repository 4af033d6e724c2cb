-- Which keys the store's sealed values need (ADR 0011).
-- Every sealed value names its master key in bytes 2-5 of its public header (ADR 0004). This
-- index makes "which master keys do the rows need" a handful of index probes at every start,
-- and lets a re-seal find the rows still sealed under a retired key.
CREATE INDEX keys_sealed_with ON keys (substring(sealed FROM 2 FOR 4));

-- The blind-index key every fingerprint is made with: one row, pinned at first use, kept
-- across master-key rotations. Only its public id is readable; the key is sealed under a
-- master key like any key plaintext.
CREATE TABLE index_key (
    singleton smallint    PRIMARY KEY DEFAULT 1 CHECK (singleton = 1),
    key_id    text        NOT NULL,
    sealed    bytea       NOT NULL,
    pinned_at timestamptz NOT NULL DEFAULT now()
);
