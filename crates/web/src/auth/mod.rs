//! Authentication. For now: password hashing; sessions and login follow.

pub mod password;
