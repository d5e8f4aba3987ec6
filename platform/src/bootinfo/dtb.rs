//! The arm64 boot protocol's flattened device tree (DTB): memory, reserved
//! memory, `/chosen` (bootargs, initrd) and the DTB's own range.
//!
//! The `fdt` crate (0.1) does the queries, but it trusts its input: a
//! property running past the structure block, a bad string offset, a node
//! nested deeper than 64 or a NOP token inside a node makes it panic.
//! [`validate_dtb`] therefore walks the whole structure block first and
//! refuses anything the crate could trip on; only a validated blob is handed
//! to `fdt::Fdt`. Other DT readers in the platform crate should do the same.

use super::{
    cmdline_from_bytes, BootError, BootInfo, BootProtocol, MemoryKind, MemoryMapBuilder, PhysMemory,
};
use fdt::node::FdtNode;

/// Largest device tree accepted (Linux arm64 uses the same 2 MiB limit).
pub const MAX_DTB_SIZE: usize = 2 << 20;
/// Deepest node nesting accepted; the `fdt` crate breaks above 63.
const MAX_DEPTH: usize = 32;
const HEADER_LEN: usize = 40;
const MAGIC: u32 = 0xd00d_feed;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// What is wrong with a device tree blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtbError {
    /// Shorter than its header or than the `totalsize` it states.
    Truncated,
    BadMagic,
    /// Not version 17 (backwards compatible to 16): older layouts lack
    /// `size_dt_struct`.
    BadVersion,
    /// `totalsize` above [`MAX_DTB_SIZE`].
    TooLarge,
    /// A header offset or size points outside the blob; names which.
    BadLayout(&'static str),
    /// The structure block is malformed; says how.
    BadStructure(&'static str),
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn be64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The byte range `off .. off+len` of a blob of `total` bytes, if inside.
fn block(off: u32, len: u32, total: usize, what: &'static str) -> Result<(usize, usize), DtbError> {
    let start = off as usize;
    let end = start
        .checked_add(len as usize)
        .ok_or(DtbError::BadLayout(what))?;
    if end > total {
        return Err(DtbError::BadLayout(what));
    }
    Ok((start, end))
}

/// A NUL-terminated UTF-8 string at the start of `b`, and its length.
fn cstr(b: &[u8]) -> Option<&str> {
    let nul = b.iter().position(|&c| c == 0)?;
    core::str::from_utf8(&b[..nul]).ok()
}

/// Checks a device tree blob completely; returns it cut to `totalsize`.
pub fn validate_dtb(bytes: &[u8]) -> Result<&[u8], DtbError> {
    let field = |i: usize| be32(bytes, i * 4).ok_or(DtbError::Truncated);
    if field(0)? != MAGIC {
        return Err(DtbError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(DtbError::Truncated);
    }
    let total = field(1)? as usize;
    if total > MAX_DTB_SIZE {
        return Err(DtbError::TooLarge);
    }
    if total < HEADER_LEN || total > bytes.len() {
        return Err(DtbError::Truncated);
    }
    let (version, last_comp) = (field(5)?, field(6)?);
    if version < 17 || last_comp > 17 {
        return Err(DtbError::BadVersion);
    }
    let dtb = &bytes[..total];
    let (s_start, s_end) = block(field(2)?, field(9)?, total, "structure block")?;
    let (t_start, t_end) = block(field(3)?, field(8)?, total, "strings block")?;
    if !s_start.is_multiple_of(4) {
        return Err(DtbError::BadLayout("structure block is not 4-byte aligned"));
    }
    let rsv = field(4)? as usize;
    if !rsv.is_multiple_of(8) || rsv < HEADER_LEN {
        return Err(DtbError::BadLayout("memory reservation block"));
    }
    let mut at = rsv;
    loop {
        let (addr, size) = match (be64(dtb, at), be64(dtb, at + 8)) {
            (Some(a), Some(s)) => (a, s),
            _ => {
                return Err(DtbError::BadLayout(
                    "memory reservation block is unterminated",
                ))
            }
        };
        at += 16;
        if addr == 0 && size == 0 {
            break;
        }
    }
    walk_structure(&dtb[s_start..s_end], &dtb[t_start..t_end])?;
    Ok(dtb)
}

fn walk_structure(s: &[u8], strings: &[u8]) -> Result<(), DtbError> {
    let bad = DtbError::BadStructure;
    let token = |at: usize| be32(s, at).ok_or(bad("structure block ends without FDT_END"));
    let align = |n: usize| n.checked_add(3).map(|n| n & !3).ok_or(bad("overflow"));
    let mut at = 0;
    let mut depth = 0usize;
    let mut root_done = false;
    // Properties must come before a node's children (the fdt crate relies
    // on it); cleared when a child ends.
    let mut props_allowed = false;
    loop {
        match token(at)? {
            FDT_BEGIN_NODE => {
                if root_done {
                    return Err(bad("more than one root node"));
                }
                let name = s.get(at + 4..).and_then(cstr).ok_or(bad("node name"))?;
                at = align(at + 4 + name.len() + 1)?;
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(bad("nodes nested too deep"));
                }
                props_allowed = true;
            }
            FDT_PROP => {
                if depth == 0 || !props_allowed {
                    return Err(bad("property outside a node or after a child node"));
                }
                let len = token(at + 4)? as usize;
                let name_off = token(at + 8)? as usize;
                let data_end = (at + 12).checked_add(len).ok_or(bad("property length"))?;
                if data_end > s.len() {
                    return Err(bad("property runs past the structure block"));
                }
                let name = strings
                    .get(name_off..)
                    .and_then(cstr)
                    .ok_or(bad("property name offset"))?;
                if (name == "#address-cells" || name == "#size-cells") && len != 4 {
                    return Err(bad("#address-cells/#size-cells is not one cell"));
                }
                at = align(data_end)?;
            }
            FDT_END_NODE => {
                depth = depth.checked_sub(1).ok_or(bad("unbalanced FDT_END_NODE"))?;
                props_allowed = false;
                root_done = depth == 0;
                at += 4;
            }
            FDT_NOP if depth == 0 => at += 4,
            FDT_NOP => return Err(bad("FDT_NOP inside a node (unsupported)")),
            FDT_END if root_done => return Ok(()),
            FDT_END => return Err(bad("FDT_END before the root node ended")),
            _ => return Err(bad("unknown token")),
        }
    }
}

/// `#address-cells`, `#size-cells` of `node` (for its children); the
/// devicetree specification's defaults are 2 and 1.
fn cells(node: FdtNode<'_, '_>) -> (usize, usize) {
    let get = |name| {
        node.property(name)
            .and_then(|p| be32(p.value, 0))
            .map(|v| v as usize)
    };
    (
        get("#address-cells").unwrap_or(2),
        get("#size-cells").unwrap_or(1),
    )
}

/// Big-endian number of 1 or 2 cells.
fn read_cells(b: &[u8], n: usize) -> Option<u64> {
    match n {
        1 => be32(b, 0).map(u64::from),
        2 => be64(b, 0),
        _ => None,
    }
}

/// Adds every (address, size) pair of `node`'s `reg` as `kind`.
fn add_reg(
    map: &mut MemoryMapBuilder,
    node: FdtNode<'_, '_>,
    (ac, sc): (usize, usize),
    kind: MemoryKind,
) -> Result<(), BootError> {
    let Some(reg) = node.property("reg") else {
        return Ok(());
    };
    if !(1..=2).contains(&ac) || !(1..=2).contains(&sc) {
        return Err(BootError::Unsupported(
            "device tree memory with #address-cells/#size-cells other than 1 or 2",
        ));
    }
    let entry = (ac + sc) * 4;
    if reg.value.len() % entry != 0 {
        return Err(BootError::BadDeviceTree);
    }
    for e in reg.value.chunks_exact(entry) {
        let addr = read_cells(e, ac).ok_or(BootError::BadDeviceTree)?;
        let size = read_cells(&e[ac * 4..], sc).ok_or(BootError::BadDeviceTree)?;
        map.add(addr, size, kind)?;
    }
    Ok(())
}

fn disabled(node: FdtNode<'_, '_>) -> bool {
    node.property("status")
        .and_then(|p| p.as_str())
        .is_some_and(|s| s != "okay" && s != "ok")
}

/// `linux,initrd-start` / `-end`: one or two cells.
fn initrd_prop(node: FdtNode<'_, '_>, name: &str) -> Result<Option<u64>, BootError> {
    match node.property(name) {
        None => Ok(None),
        Some(p) => match p.value.len() {
            4 | 8 => Ok(read_cells(p.value, p.value.len() / 4)),
            _ => Err(BootError::BadDeviceTree),
        },
    }
}

pub fn parse(mem: &dyn PhysMemory, pa: u64) -> Result<BootInfo, BootError> {
    let head = mem.read(pa, HEADER_LEN).ok_or(BootError::Unreadable(
        "the device tree header is not readable",
    ))?;
    if be32(head, 0) != Some(MAGIC) {
        return Err(BootError::BadDeviceTree);
    }
    let total = be32(head, 4).ok_or(BootError::BadDeviceTree)? as usize;
    if !(HEADER_LEN..=MAX_DTB_SIZE).contains(&total) {
        return Err(BootError::BadDeviceTree);
    }
    let bytes = mem
        .read(pa, total)
        .ok_or(BootError::Unreadable("the device tree is not readable"))?;
    let bytes = validate_dtb(bytes).map_err(|_| BootError::BadDeviceTree)?;
    let fdt = fdt::Fdt::new(bytes).map_err(|_| BootError::BadDeviceTree)?;
    let root = fdt.all_nodes().next().ok_or(BootError::BadDeviceTree)?;
    let root_cells = cells(root);

    let mut info = BootInfo::empty(BootProtocol::DeviceTree);
    let mut map = MemoryMapBuilder::new();
    let (mut initrd_start, mut initrd_end) = (None, None);
    for node in root.children() {
        let base = node.name.split('@').next().unwrap_or("");
        let device_type = node.property("device_type").and_then(|p| p.as_str());
        if (base == "memory" || device_type == Some("memory")) && !disabled(node) {
            add_reg(&mut map, node, root_cells, MemoryKind::Usable)?;
        } else if base == "reserved-memory" {
            let rm_cells = cells(node);
            for child in node.children().filter(|c| !disabled(*c)) {
                add_reg(&mut map, child, rm_cells, MemoryKind::Reserved)?;
            }
        } else if base == "chosen" {
            if let Some(args) = node.property("bootargs") {
                (info.cmdline, info.cmdline_truncated) = cmdline_from_bytes(args.value);
            }
            initrd_start = initrd_prop(node, "linux,initrd-start")?;
            initrd_end = initrd_prop(node, "linux,initrd-end")?;
        }
    }
    // The memory reservation block: (address, size) pairs up to (0, 0).
    // validate_dtb checked it is terminated inside the blob.
    let mut at = be32(bytes, 16).ok_or(BootError::BadDeviceTree)? as usize;
    while let (Some(addr), Some(size)) = (be64(bytes, at), be64(bytes, at + 8)) {
        if addr == 0 && size == 0 {
            break;
        }
        map.add(addr, size, MemoryKind::Reserved)?;
        at += 16;
    }
    info.memory = map.finish()?;

    if let (Some(start), Some(end)) = (initrd_start, initrd_end) {
        let size = end.checked_sub(start).ok_or(BootError::BadRange(
            "linux,initrd-end is below linux,initrd-start",
        ))?;
        info.add_module(start, size, true)?;
    }
    let end = pa.checked_add(total as u64).ok_or(BootError::BadRange(
        "the device tree ends past the address space",
    ))?;
    info.dtb = Some(pa..end);
    Ok(info)
}
