//! Authentication: password hashing, database-backed sessions, CSRF
//! tokens, and the login and logout pages.

pub mod csrf;
pub mod login;
pub mod password;
pub mod session;
pub mod tokens;
