-- When each API token last authenticated a request (`autokey token list`).
ALTER TABLE api_tokens ADD COLUMN last_used_at TEXT;
