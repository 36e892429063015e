//! edgecell inference provider core (work in progress).
#![forbid(unsafe_code)]
