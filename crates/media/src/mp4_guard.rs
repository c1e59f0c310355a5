//! A check of an MP4 (ISO base media) file's sample tables before symphonia
//! reads them: its demuxer sizes each table's buffer from the entry count
//! the file declares, so a few hostile bytes could ask for gigabytes (the
//! fuzzer found a 17 GB request from one `stts` box). Every table's entries
//! must fit inside its box.

/// Boxes that hold other boxes on the way to the sample tables.
const CONTAINERS: [&[u8; 4]; 8] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"mvex", b"moof",
];

/// True if `head` starts like an ISO base media file (`ftyp` first).
pub(crate) fn looks_like_mp4(head: &[u8]) -> bool {
    head.len() >= 8 && &head[4..8] == b"ftyp"
}

/// Walks the boxes of `bytes` and checks each sample table's declared
/// entries against its size.
pub(crate) fn check(bytes: &[u8]) -> Result<(), String> {
    walk(bytes, 0)
}

fn walk(mut bytes: &[u8], depth: usize) -> Result<(), String> {
    if depth > 16 {
        return Err("the MP4 file nests its boxes too deeply".to_owned());
    }
    while bytes.len() >= 8 {
        let declared = u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        let kind: [u8; 4] = [bytes[4], bytes[5], bytes[6], bytes[7]];
        let (header, size) = match declared {
            // To the end of the file.
            0 => (8, bytes.len() as u64),
            1 if bytes.len() >= 16 => {
                let mut large = [0u8; 8];
                large.copy_from_slice(&bytes[8..16]);
                (16, u64::from_be_bytes(large))
            }
            _ => (8, declared),
        };
        if size < header as u64 {
            return Err("the MP4 file has a box smaller than its header".to_owned());
        }
        // A box running past the end: the file is cut off; symphonia
        // reports that itself, so only what is there is checked.
        let end = usize::try_from(size).unwrap_or(usize::MAX).min(bytes.len());
        let body = &bytes[header.min(end)..end];
        if CONTAINERS.contains(&&kind) {
            walk(body, depth + 1)?;
        } else {
            check_table(&kind, body)?;
        }
        bytes = &bytes[end..];
    }
    Ok(())
}

/// A full box's entry count (after version and flags) must fit its body.
fn check_table(kind: &[u8; 4], body: &[u8]) -> Result<(), String> {
    let read_u32 = |at: usize| -> Option<u64> {
        body.get(at..at + 4)
            .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    };
    // (offset of the count, bytes per entry, bytes before the entries)
    let layout = match kind {
        b"stts" | b"ctts" | b"stco" | b"stss" | b"elst" | b"stsc" | b"co64" => {
            let entry = match kind {
                b"stts" | b"ctts" => 8,
                b"stco" | b"stss" => 4,
                b"stsc" => 12,
                b"co64" => 8,
                // elst: version 1 entries are 20 bytes, version 0 12.
                _ => {
                    if body.first() == Some(&1) {
                        20
                    } else {
                        12
                    }
                }
            };
            Some((4, entry, 8))
        }
        // stsz: a fixed sample size, or 0 and one size per sample.
        b"stsz" => match read_u32(4) {
            Some(0) => Some((8, 4, 12)),
            _ => None,
        },
        _ => None,
    };
    let Some((count_at, entry, start)) = layout else {
        return Ok(());
    };
    let Some(count) = read_u32(count_at) else {
        return Err(format!(
            "the MP4 file's '{}' box is cut short",
            String::from_utf8_lossy(kind)
        ));
    };
    let room = (body.len() as u64).saturating_sub(start);
    if count.saturating_mul(entry) > room {
        return Err(format!(
            "the MP4 file's '{}' box declares {count} entries but holds room for {}",
            String::from_utf8_lossy(kind),
            room / entry
        ));
    }
    Ok(())
}
