"""The data layer: tables, the async engine and its sessions, and the migrations."""
