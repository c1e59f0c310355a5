//! A streaming `multipart/form-data` body for `add`: headers in memory,
//! file contents read from disk as the request goes out, so publishing a
//! multi-gigabyte snapshot does not load it into memory.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::PathBuf;

/// One part: a folder (no content) or a file read from `path`.
#[derive(Debug)]
pub(crate) enum Part {
    Dir { name: String },
    File { name: String, path: PathBuf },
}

/// Reads the encoded body part by part, opening each file only when its
/// turn comes.
#[derive(Debug)]
pub(crate) struct MultipartBody {
    boundary: String,
    parts: std::vec::IntoIter<Part>,
    current: Option<Box<Cursor<Vec<u8>>>>,
    file: Option<File>,
    done: bool,
}

impl MultipartBody {
    pub(crate) fn new(parts: Vec<Part>) -> MultipartBody {
        // Random enough to never occur in model files by accident; the
        // boundary only has to be absent from the headers we write, and
        // file bytes are delimited by it only after a CRLF we add.
        let boundary = format!("ipfs-accelerate-{:032x}", crate::fsutil::nanos());
        MultipartBody {
            boundary,
            parts: parts.into_iter(),
            current: None,
            file: None,
            done: false,
        }
    }

    pub(crate) fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// Queue the headers of the next part (and open its file), or the
    /// closing boundary; false once everything is out.
    fn advance(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        // Every part after the first starts by ending the previous one.
        let mut head = Vec::new();
        match self.parts.next() {
            Some(Part::Dir { name }) => {
                head.extend_from_slice(
                    format!(
                        "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: application/x-directory\r\n\r\n\r\n",
                        self.boundary,
                        encode_name(&name)
                    )
                    .as_bytes(),
                );
            }
            Some(Part::File { name, path }) => {
                self.file = Some(File::open(&path)?);
                head.extend_from_slice(
                    format!(
                        "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                        self.boundary,
                        encode_name(&name)
                    )
                    .as_bytes(),
                );
            }
            None => {
                head.extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
                self.done = true;
            }
        }
        self.current = Some(Box::new(Cursor::new(head)));
        Ok(true)
    }
}

/// Kubo and js-ipfs both URL-decode the filename; '/' stays literal so
/// the node sees the folder structure.
fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Read for MultipartBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(head) = self.current.as_mut() {
                let n = head.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.current = None;
            }
            if let Some(file) = self.file.as_mut() {
                let n = file.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.file = None;
                // The CRLF that ends a file's content.
                self.current = Some(Box::new(Cursor::new(b"\r\n".to_vec())));
                continue;
            }
            if !self.advance()? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodes_parts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, b"hello").unwrap();
        let mut body = MultipartBody::new(vec![
            Part::Dir {
                name: "root".into(),
            },
            Part::File {
                name: "root/a b.txt".into(),
                path: file,
            },
        ]);
        let boundary = body.boundary.clone();
        let mut out = String::new();
        body.read_to_string(&mut out).unwrap();
        assert!(out.starts_with(&format!("--{boundary}\r\n")), "{out}");
        assert!(out.contains("filename=\"root/a%20b.txt\""), "{out}");
        assert!(out.contains("\r\n\r\nhello\r\n"), "{out}");
        assert!(out.ends_with(&format!("--{boundary}--\r\n")), "{out}");
        assert_eq!(out.matches(&format!("--{boundary}\r\n")).count(), 2);
    }

    #[test]
    fn encode_name_keeps_slashes() {
        assert_eq!(
            encode_name("m/1_Pooling/config.json"),
            "m/1_Pooling/config.json"
        );
        assert_eq!(encode_name("a\"b"), "a%22b");
    }
}
