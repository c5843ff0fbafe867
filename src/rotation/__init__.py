"""The cursor-key rotation function (Secrets Manager calls it for the four rotation steps)."""
