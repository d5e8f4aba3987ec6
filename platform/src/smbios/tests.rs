//! SMBIOS host tests: F-segments recorded from SeaBIOS and qboot under QEMU
//! (testdata/README.md), then synthetic tables and corrupt ones.

use super::*;
use crate::bootinfo::find_rsdp_in_bios_area;
use crate::bootinfo::testmem::FakeMem;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// 0xE0000..0x100000 zeroed, with a recorded 4 KiB window at `at`.
fn bios_area_with(name: &str, at: u64) -> FakeMem {
    let mut area = vec![0u8; 0x20000];
    let window = fixture(name);
    let off = (at - 0xe0000) as usize;
    area[off..off + window.len()].copy_from_slice(&window);
    FakeMem::new().with(0xe0000, area)
}

#[test]
fn seabios_q35_vmware_persona() {
    let mem = bios_area_with("seabios-q35-vmware-f5000.bin", 0xf5000);
    let ep = find(&mem).expect("SeaBIOS leaves SMBIOS in the F-segment");
    assert_eq!(ep, 0xf5270);
    let info = parse(&mem, ep).unwrap();
    assert_eq!(info.manufacturer.as_str(), "VMware, Inc.");
    assert_eq!(info.product.as_str(), "VMware Virtual Platform");
    assert_eq!(info.version, (2, 8));
    assert_eq!(find_rsdp_in_bios_area(&mem), Some(0xf5250));
    assert_eq!(find_and_parse(&mem), Some(Ok(info)));
    assert_eq!(find_and_parse(&FakeMem::new()), None);
}

#[test]
fn seabios_q35_virtualbox_persona() {
    let mem = bios_area_with("seabios-q35-vbox-f5000.bin", 0xf5000);
    let ep = find(&mem).unwrap();
    assert_eq!(ep, 0xf5280);
    let info = parse(&mem, ep).unwrap();
    assert_eq!(
        (info.manufacturer.as_str(), info.product.as_str()),
        ("innotek GmbH", "VirtualBox")
    );
}

#[test]
fn qboot_microvm() {
    let mem = bios_area_with("qboot-microvm-f4000.bin", 0xf4000);
    let ep = find(&mem).unwrap();
    assert_eq!(ep, 0xf4200);
    let info = parse(&mem, ep).unwrap();
    // qboot's own type 1 strings, as recorded.
    assert_eq!(info.manufacturer.as_str(), "Bochs");
    assert_eq!(info.product.as_str(), "Bochs");
    assert_eq!(info.version, (2, 4));
    assert_eq!(find_rsdp_in_bios_area(&mem), Some(0xf41d0));
}

// ------------------------------------------------------------ synthetic

/// One structure: type, formatted area after the 4-byte header, strings.
fn structure(kind: u8, body: &[u8], strings: &[&str]) -> Vec<u8> {
    let mut s = vec![kind, (4 + body.len()) as u8, 0x34, 0x12];
    s.extend(body);
    for st in strings {
        s.extend(st.as_bytes());
        s.push(0);
    }
    if strings.is_empty() {
        s.push(0);
    }
    s.push(0);
    s
}

fn table(manufacturer: &str, product: &str) -> Vec<u8> {
    let mut t = structure(
        0,
        &[1, 2, 0, 0xe8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &["SeaBIOS", "1.16"],
    );
    // type 1: manufacturer=1, product=2, version=0, serial=0, UUID, wake-up.
    let mut body = vec![1, 2, 0, 0];
    body.extend([0u8; 16]);
    body.push(6);
    t.extend(structure(1, &body, &[manufacturer, product]));
    t.extend(structure(127, &[], &[]));
    t
}

fn fix_checksum(b: &mut [u8], at: usize) {
    b[at] = 0;
    b[at] = 0u8.wrapping_sub(sum(b));
}

const TABLE_AT: u64 = 0x7fe_0000;

fn ep21(table_len: u16, count: u16) -> Vec<u8> {
    let mut ep = vec![0u8; 0x1f];
    ep[..4].copy_from_slice(b"_SM_");
    ep[5] = 0x1f;
    ep[6] = 2;
    ep[7] = 8;
    ep[0x10..0x15].copy_from_slice(b"_DMI_");
    ep[0x16..0x18].copy_from_slice(&table_len.to_le_bytes());
    ep[0x18..0x1c].copy_from_slice(&(TABLE_AT as u32).to_le_bytes());
    ep[0x1c..0x1e].copy_from_slice(&count.to_le_bytes());
    ep[0x1e] = 0x28;
    let mut inter = ep[0x10..0x1f].to_vec();
    fix_checksum(&mut inter, 5);
    ep[0x10..0x1f].copy_from_slice(&inter);
    fix_checksum(&mut ep, 4);
    ep
}

fn ep30(max_len: u32, addr: u64) -> Vec<u8> {
    let mut ep = vec![0u8; 0x18];
    ep[..5].copy_from_slice(b"_SM3_");
    ep[6] = 0x18;
    ep[7] = 3;
    ep[8] = 6;
    ep[0xa] = 1;
    ep[0xc..0x10].copy_from_slice(&max_len.to_le_bytes());
    ep[0x10..0x18].copy_from_slice(&addr.to_le_bytes());
    fix_checksum(&mut ep, 5);
    ep
}

/// The BIOS area with `ep` at 0xF8000 and the table in RAM.
fn machine(ep: &[u8], table: Vec<u8>) -> FakeMem {
    let mut area = vec![0u8; 0x10000];
    area[0x8000..0x8000 + ep.len()].copy_from_slice(ep);
    FakeMem::new().with(0xf0000, area).with(TABLE_AT, table)
}

#[test]
fn smbios_21_synthetic() {
    let t = table("Xen", "HVM domU");
    let mem = machine(&ep21(t.len() as u16, 3), t);
    assert_eq!(find(&mem), Some(0xf8000));
    let info = parse(&mem, 0xf8000).unwrap();
    assert_eq!(
        (info.manufacturer.as_str(), info.product.as_str()),
        ("Xen", "HVM domU")
    );
    assert_eq!(info.version, (2, 8));
}

#[test]
fn smbios_30_synthetic_and_preferred() {
    let t = table("Amazon EC2", "m7g.large");
    let mut area = vec![0u8; 0x10000];
    // A valid 2.1 entry point comes first in the area; 3.0 must win.
    let e21 = ep21(t.len() as u16, 3);
    area[0x100..0x100 + e21.len()].copy_from_slice(&e21);
    let e30 = ep30(t.len() as u32, TABLE_AT);
    area[0x9000..0x9000 + e30.len()].copy_from_slice(&e30);
    let mem = FakeMem::new().with(0xf0000, area).with(TABLE_AT, t);
    assert_eq!(find(&mem), Some(0xf9000));
    let info = parse(&mem, 0xf9000).unwrap();
    assert_eq!(
        (info.manufacturer.as_str(), info.version),
        ("Amazon EC2", (3, 6))
    );
}

#[test]
fn smbios_30_maximum_size_past_readable_memory() {
    // The stated maximum runs past the mapped table: read what is there.
    let mut t = table("Google", "Google Compute Engine");
    t.resize(0x1000, 0); // one mapped page
    let mem = machine(&ep30(0x10_0000, TABLE_AT), t);
    let info = parse(&mem, 0xf8000).unwrap();
    assert_eq!(info.product.as_str(), "Google Compute Engine");
}

#[test]
fn legacy_dmi_entry_point() {
    let t = table("innotek GmbH", "VirtualBox");
    let e21 = ep21(t.len() as u16, 3);
    let mem = machine(&e21[0x10..0x1f], t);
    assert_eq!(find(&mem), Some(0xf8000));
    let info = parse(&mem, 0xf8000).unwrap();
    assert_eq!(
        (info.product.as_str(), info.version),
        ("VirtualBox", (2, 8))
    );
}

#[test]
fn strings_are_trimmed_cut_and_sanitised() {
    let long = "L".repeat(100);
    let t = table("  QEMU  ", &long);
    let mem = machine(&ep21(t.len() as u16, 3), t);
    let info = parse(&mem, 0xf8000).unwrap();
    assert_eq!(info.manufacturer.as_str(), "QEMU");
    assert_eq!(info.product.len(), 64);
    // Non-UTF-8 bytes and an index past the string set.
    let mut body = vec![1, 9, 0, 0];
    body.extend([0u8; 17]);
    let mut raw = structure(1, &body, &[]);
    raw.truncate(raw.len() - 2);
    raw.extend(b"\xffVM\0\0");
    let mem = machine(&ep21(raw.len() as u16, 1), raw);
    let info = parse(&mem, 0xf8000).unwrap();
    assert_eq!(
        (info.manufacturer.as_str(), info.product.as_str()),
        ("?VM", "")
    );
}

#[test]
fn corrupt_entry_points() {
    let t = table("QEMU", "Standard PC");
    let good = ep21(t.len() as u16, 3);
    // `found`: what `find` still accepts, e.g. an intact `_DMI_` part.
    let check = |ep: Vec<u8>, want: SmbiosError, found: Option<u64>| {
        let mem = machine(&ep, table("QEMU", "Standard PC"));
        assert_eq!(parse(&mem, 0xf8000), Err(want), "{ep:x?}");
        assert_eq!(find(&mem), found, "{ep:x?}");
    };
    // Outer checksum broken: the 2.1 entry point is refused, but its
    // intact `_DMI_` part (16-byte aligned) is a valid legacy entry point.
    let mut bad = good.clone();
    bad[0x8] ^= 1;
    let mem = machine(&bad, t.clone());
    assert_eq!(parse(&mem, 0xf8000), Err(SmbiosError::BadChecksum));
    assert_eq!(find(&mem), Some(0xf8010));
    assert_eq!(parse(&mem, 0xf8010).unwrap().manufacturer.as_str(), "QEMU");
    let mut bad = good.clone();
    bad[0x18] ^= 1; // table address: intermediate checksum breaks
    fix_checksum(&mut bad, 4);
    check(bad, SmbiosError::BadChecksum, None);
    let mut bad = good.clone();
    bad[5] = 0x40; // length
    check(bad, SmbiosError::BadEntryPoint, Some(0xf8010));
    let mut bad = good.clone();
    bad[0x10] = b'X'; // intermediate anchor
    fix_checksum(&mut bad, 4);
    check(bad, SmbiosError::BadAnchor, None);
    let mut bad = ep30(64, TABLE_AT);
    bad[6] = 0x10; // 3.0 length too short
    fix_checksum(&mut bad, 5);
    check(bad, SmbiosError::BadEntryPoint, None);
    check(vec![0; 32], SmbiosError::BadAnchor, None);
    // Valid 3.0 entry point with an absurd maximum size.
    let mem = machine(&ep30(u32::MAX, TABLE_AT), t.clone());
    assert_eq!(parse(&mem, 0xf8000), Err(SmbiosError::BadEntryPoint));
    // Table pointer into nothing.
    let mem = machine(&ep30(64, 0x1_0000_0000), t);
    assert_eq!(parse(&mem, 0xf8000), Err(SmbiosError::Unreadable));
    // Entry point address unreadable.
    assert_eq!(
        parse(&FakeMem::new(), 0xf8000),
        Err(SmbiosError::Unreadable)
    );
    assert_eq!(find(&FakeMem::new()), None);
}

#[test]
fn unaligned_anchor_is_ignored() {
    let t = table("QEMU", "x");
    let e = ep21(t.len() as u16, 3);
    let mut area = vec![0u8; 0x10000];
    area[0x8008..0x8008 + e.len()].copy_from_slice(&e);
    let mem = FakeMem::new().with(0xf0000, area).with(TABLE_AT, t);
    assert_eq!(find(&mem), None);
}

#[test]
fn corrupt_tables() {
    let run = |t: Vec<u8>, count: u16| {
        let mem = machine(&ep21(t.len() as u16, count), t);
        parse(&mem, 0xf8000)
    };
    // Structure length below its header.
    let mut t = table("QEMU", "x");
    t[1] = 2;
    assert_eq!(run(t, 3), Err(SmbiosError::BadStructure));
    // Formatted area longer than the table.
    let mut t = table("QEMU", "x");
    t[1] = 0xff;
    assert_eq!(run(t, 3), Err(SmbiosError::BadStructure));
    // String set without its double NUL before the end.
    let mut t = structure(1, &[1, 2, 0, 0], &["QEMU"]);
    t.pop();
    assert_eq!(run(t, 1), Err(SmbiosError::BadStructure));
    // No type 1 before the end-of-table marker, or before the count runs out.
    let mut t = structure(127, &[], &[]);
    t.extend(table("QEMU", "x"));
    assert_eq!(run(t, 4), Err(SmbiosError::NoSystemInfo));
    assert_eq!(run(table("QEMU", "x"), 1), Err(SmbiosError::NoSystemInfo));
    // A type 1 too short to hold the product index.
    let t = structure(1, &[1], &["QEMU"]);
    assert_eq!(run(t, 1), Err(SmbiosError::NoSystemInfo));
    // Every single-byte corruption of a good table: no panic.
    let good = table("QEMU", "Standard PC");
    for at in 0..good.len() {
        for v in [0u8, 1, 3, 4, 0x7f, 0xff] {
            let mut t = good.clone();
            t[at] = v;
            let _ = run(t, 3);
        }
    }
}
