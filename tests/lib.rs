//! Shared helpers live in `all/`; this library is empty.
