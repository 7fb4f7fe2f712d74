//! Files only their owner may read: what the broker writes for its data directory and for
//! credentials.

use std::io::Write;
use std::path::Path;

use rpc_core::SturdyUrl;

/// Replaces the file `path` with `bytes`, readable by its owner only: written whole to a new
/// file, then renamed over the old one (and the directory synced), so a crash leaves one or
/// the other, never half of each, and the old file's permissions never carry over.
pub(crate) fn replace_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let unique = SturdyUrl::new_secret().map_err(|e| e.to_string())?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let fresh = dir.join(format!(".{name}.{}", &unique[..16]));
    write_private(&fresh, bytes)?;
    if let Err(e) = std::fs::rename(&fresh, path) {
        let _ = std::fs::remove_file(&fresh);
        return Err(format!("could not replace {}: {e}", path.display()));
    }
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Writes `bytes` to a new file `path`, readable by its owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(|e| format!("could not write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_replaced_file_is_private_whatever_it_was() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "pbrs-data-mode-{}",
            &SturdyUrl::new_secret().unwrap()[..16]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        std::fs::write(&file, "old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace_private(&file, b"password = x\n").unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "password = x\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
