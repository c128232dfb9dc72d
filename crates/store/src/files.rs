//! The files Stagehand keeps on disk (the SQLite database and its `-wal`
//! and `-shm`, the generated `secret.key`) and their directory are the
//! server user's alone: 0600 files in a 0700 directory, set explicitly so
//! the umask cannot loosen them, and tightened again at start if something
//! (an older version, a restore from backup) left them readable by others.
//! On other platforms these are no-ops.

use std::io;
use std::path::Path;

/// The mode of the data directory.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file in it.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (with any missing parents, each 0700) if it does not
/// exist, and makes it 0700. For a directory that is Stagehand's own: the
/// data directory.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    create_private_dir(dir)?;
    set_mode(dir, DIR_MODE)
}

/// Creates `dir` (with any missing parents) 0700 if it does not exist; an
/// existing directory is left as it is, since it may not be ours alone.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)?;
    // The umask may have taken bits away; this is the mode, exactly.
    set_mode(dir, DIR_MODE)
}

/// Makes `path` 0600 if it exists.
pub fn private_file(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(_) => set_mode(path, FILE_MODE),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `path` empty and 0600 unless it exists, then makes it 0600: a
/// SQLite database created this way starts private, and its `-wal` and
/// `-shm`, which SQLite creates with the database's mode, do too.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path)?;
    set_mode(path, FILE_MODE)
}

/// Creates a new file, mode 0600, failing if anything is at `path`: a
/// file, a directory or a symlink, dangling or not (`O_CREAT | O_EXCL`
/// never follows one), so nothing is written through a link someone left.
pub fn create_new_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path)?;
    set_mode(path, FILE_MODE)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if current == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_existing_directory_is_tightened_only_when_it_is_ours() {
        let root = std::env::temp_dir().join(format!("stagehand-files-{}", uuid::Uuid::new_v4()));
        let shared = root.join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755);
        private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o700);
        let file = shared.join("f");
        create_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        private_file(&shared.join("absent")).unwrap();
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_new_private_file_is_never_written_through_a_link() {
        let root = std::env::temp_dir().join(format!("stagehand-files-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).unwrap();
        let elsewhere = root.join("elsewhere");
        let link = root.join("backup.db");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert!(create_new_private_file(&link).is_err());
        assert!(!elsewhere.exists(), "written through a dangling link");
        let fresh = root.join("fresh.db");
        create_new_private_file(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o600);
        assert!(create_new_private_file(&fresh).is_err());
        std::fs::remove_dir_all(root).unwrap();
    }
}
