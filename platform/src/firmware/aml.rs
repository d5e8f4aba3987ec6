//! PCI INTx routing from ACPI `_PRT`: a small AML reader, not a general
//! interpreter.
//!
//! x86 PCI functions without MSI-X interrupt through an INTx pin wired to
//! an IOAPIC input that only the DSDT's AML names: the root bridge's
//! `_PRT` maps (device, pin) to a GSI, or to a link device whose `_CRS`
//! names the GSI with its trigger mode and polarity.
//!
//! The `aml` crate (rust-osdev) needs nightly in every release (0.16:
//! `decl_macro`; `acpi` 6/7 with `aml`: `allocator_api`), and Skiff builds
//! on stable, so this module reads what routing needs itself:
//! [`Namespace::load`] walks the DSDT/SSDT term lists and records names,
//! methods and devices (skipping every other definition by its length);
//! [`IntxRouter`] calls `\_PIC(1)` (IOAPIC mode), evaluates the root
//! bridge's `_PRT` and each link's `_CRS`. Method bodies may use `If`/
//! `Else`, `Return`, `Store`, the logical operators, constants, `Arg`/
//! `Local`, packages, buffers and calls of other such methods: that covers
//! QEMU's q35 and VirtualBox's DSDTs. Anything else fails with an error.
//!
//! Evaluation never touches hardware: a field of an operation region (the
//! only way AML reaches memory, ports or PCI configuration) is refused with
//! [`AmlFailure::Refused`], so e.g. PIIX's PIC-mode links (`_CRS` reads the
//! PIRQ registers) do not route. Every read is bounds-checked; nesting and
//! evaluation steps are capped. Nothing here panics on bad AML.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Size of an ACPI table header; AML follows it.
const SDT_HEADER: usize = 36;
/// `EisaId("PNP0A03")` (PCI host bridge) and `EisaId("PNP0A08")` (PCIe).
const EISA_PNP0A03: u64 = 0x030a_d041;
const EISA_PNP0A08: u64 = 0x080a_d041;
/// Deepest nesting of scopes, packages and method calls we follow.
const MAX_DEPTH: usize = 32;
/// Evaluation steps per top-level evaluation (no loops, so generous).
const MAX_STEPS: u32 = 100_000;

/// Where an INTx pin arrives: a GSI, edge or level, active high or low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntxRoute {
    pub gsi: u32,
    pub level: bool,
    pub active_low: bool,
}

/// Why INTx routing is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmlFailure {
    /// No DSDT was recorded (no ACPI, or an unreadable FADT).
    NoDsdt,
    /// The AML ends inside an object, or a length points past its end.
    Truncated(usize),
    /// An opcode this reader does not handle, at a byte offset of a table
    /// or method body.
    Unsupported(u16, usize),
    /// A name was referenced that is not defined (or not as data/method).
    UnknownName,
    /// Nesting or evaluation steps exceeded the caps.
    TooDeep,
    /// The AML reads an operation region field (hardware): refused.
    Refused,
    /// No PCI root bridge (PNP0A03/PNP0A08, bus 0) with a `_PRT`.
    NoPrt,
    /// `_PRT` is not a package of 4-element packages of the right types.
    BadPrt(&'static str),
    /// `_PRT` has no entry for this device and pin.
    NoEntry,
    /// A link's `_CRS` is not a resource template with one interrupt.
    BadLink,
}

type Fail<T> = Result<T, AmlFailure>;

/// A name path: absolute, as 4-byte segments.
pub type Path = Vec<[u8; 4]>;

/// A data value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(u64),
    Str(Vec<u8>),
    Buffer(Vec<u8>),
    Package(Vec<Value>),
    /// A name inside a package (e.g. a `_PRT` link): resolved from `scope`.
    Name {
        path: RawName,
        scope: Path,
    },
}

/// A NameString as written: `\` prefix, `^` count, segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawName {
    pub root: bool,
    pub up: usize,
    pub segs: Path,
}

#[derive(Debug, Clone)]
enum Obj<'a> {
    Data(Value),
    Method {
        args: u8,
        body: &'a [u8],
    },
    Device,
    /// An operation region field or anything else we cannot evaluate.
    Opaque,
}

fn trunc<T>(at: usize) -> Fail<T> {
    Err(AmlFailure::Truncated(at))
}

/// A cursor over AML bytes; `base` is the offset of `b[0]` for errors.
#[derive(Clone, Copy)]
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, pos: 0 }
    }
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }
    fn u8(&mut self) -> Fail<u8> {
        let v = self.peek().ok_or(AmlFailure::Truncated(self.pos))?;
        self.pos += 1;
        Ok(v)
    }
    fn bytes(&mut self, n: usize) -> Fail<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(AmlFailure::Truncated(self.pos))?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or(AmlFailure::Truncated(self.pos))?;
        self.pos = end;
        Ok(s)
    }
    fn uint(&mut self, n: usize) -> Fail<u64> {
        let s = self.bytes(n)?;
        Ok(s.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }
    /// A PkgLength; returns the slice it covers (after the length bytes)
    /// and moves past it.
    fn pkg(&mut self) -> Fail<Cur<'a>> {
        let start = self.pos;
        let lead = self.u8()?;
        let extra = usize::from(lead >> 6);
        let mut len = if extra == 0 {
            usize::from(lead & 0x3f)
        } else {
            usize::from(lead & 0x0f)
        };
        for i in 0..extra {
            len |= usize::from(self.u8()?) << (4 + 8 * i);
        }
        let end = start.checked_add(len).ok_or(AmlFailure::Truncated(start))?;
        if end < self.pos || end > self.b.len() {
            return trunc(start);
        }
        let inner = Cur {
            b: &self.b[..end],
            pos: self.pos,
        };
        self.pos = end;
        Ok(inner)
    }
    fn nameseg(&mut self) -> Fail<[u8; 4]> {
        let s = self.bytes(4)?;
        let seg = [s[0], s[1], s[2], s[3]];
        let lead_ok = seg[0] == b'_' || seg[0].is_ascii_uppercase();
        let rest_ok = seg[1..]
            .iter()
            .all(|&c| c == b'_' || c.is_ascii_uppercase() || c.is_ascii_digit());
        if lead_ok && rest_ok {
            Ok(seg)
        } else {
            Err(AmlFailure::Unsupported(u16::from(seg[0]), self.pos - 4))
        }
    }
    fn is_name_start(b: u8) -> bool {
        matches!(b, b'\\' | b'^' | b'_' | b'A'..=b'Z' | 0x2e | 0x2f)
    }
    fn name(&mut self) -> Fail<RawName> {
        let mut n = RawName {
            root: false,
            up: 0,
            segs: Vec::new(),
        };
        if self.peek() == Some(b'\\') {
            n.root = true;
            self.pos += 1;
        }
        while self.peek() == Some(b'^') {
            n.up += 1;
            self.pos += 1;
        }
        let count = match self.peek().ok_or(AmlFailure::Truncated(self.pos))? {
            0x00 => {
                self.pos += 1;
                0
            }
            0x2e => {
                self.pos += 1;
                2
            }
            0x2f => {
                self.pos += 1;
                usize::from(self.u8()?)
            }
            _ => 1,
        };
        for _ in 0..count {
            n.segs.push(self.nameseg()?);
        }
        Ok(n)
    }
}

/// `name` as an absolute path, written in `scope`.
fn absolute(name: &RawName, scope: &[[u8; 4]]) -> Option<Path> {
    let mut p: Path = if name.root {
        Vec::new()
    } else {
        let keep = scope.len().checked_sub(name.up)?;
        scope[..keep].to_vec()
    };
    p.extend_from_slice(&name.segs);
    Some(p)
}

/// The objects of the DSDT and SSDTs, by absolute path.
pub struct Namespace<'a> {
    objs: BTreeMap<Path, Obj<'a>>,
}

impl<'a> Namespace<'a> {
    /// Reads `tables` (whole ACPI tables, headers included: the DSDT,
    /// then SSDTs).
    pub fn load(tables: &[&'a [u8]]) -> Fail<Self> {
        if tables.is_empty() {
            return Err(AmlFailure::NoDsdt);
        }
        let mut ns = Self {
            objs: BTreeMap::new(),
        };
        for t in tables {
            let body = t.get(SDT_HEADER..).ok_or(AmlFailure::Truncated(0))?;
            ns.terms(Cur::new(body), &Vec::new(), 0)?;
        }
        Ok(ns)
    }

    fn define(&mut self, name: &RawName, scope: &[[u8; 4]], obj: Obj<'a>) -> Fail<Path> {
        let p = absolute(name, scope).ok_or(AmlFailure::UnknownName)?;
        self.objs.insert(p.clone(), obj);
        Ok(p)
    }

    /// A definition block's term list (table level, scopes, devices).
    fn terms(&mut self, mut c: Cur<'a>, scope: &Path, depth: usize) -> Fail<()> {
        if depth > MAX_DEPTH {
            return Err(AmlFailure::TooDeep);
        }
        while !c.done() {
            let at = c.pos;
            let op = c.u8()?;
            match op {
                0x10 | 0x5b if op == 0x10 || c.peek() == Some(0x82) => {
                    // Scope / Device: PkgLength NameString TermList.
                    if op == 0x5b {
                        c.pos += 1;
                    }
                    let mut inner = c.pkg()?;
                    let n = inner.name()?;
                    let path = absolute(&n, scope).ok_or(AmlFailure::UnknownName)?;
                    if op == 0x5b {
                        self.objs.insert(path.clone(), Obj::Device);
                    }
                    self.terms(inner, &path, depth + 1)?;
                }
                0x08 => {
                    let n = c.name()?;
                    let v = data(&mut c, scope, depth)?;
                    self.define(&n, scope, Obj::Data(v))?;
                }
                0x14 => {
                    let mut inner = c.pkg()?;
                    let n = inner.name()?;
                    let flags = inner.u8()?;
                    let body = &inner.b[inner.pos..];
                    self.define(
                        &n,
                        scope,
                        Obj::Method {
                            args: flags & 7,
                            body,
                        },
                    )?;
                }
                // If/Else at definition level: not followed (their
                // definitions are conditional); skipped whole.
                0xa0 | 0xa1 => {
                    c.pkg()?;
                }
                0x15 => {
                    // External: NameString ObjectType ArgCount.
                    c.name()?;
                    c.bytes(2)?;
                }
                0x06 => {
                    // Alias: the alias is opaque (not followed).
                    c.name()?;
                    let n = c.name()?;
                    self.define(&n, scope, Obj::Opaque)?;
                }
                0x5b => {
                    let ext = c.u8()?;
                    match ext {
                        // OperationRegion: NameString Space Offset Length.
                        0x80 => {
                            let n = c.name()?;
                            c.u8()?;
                            skip_term(&mut c, depth)?;
                            skip_term(&mut c, depth)?;
                            self.define(&n, scope, Obj::Opaque)?;
                        }
                        // Field / IndexField / BankField: field units.
                        0x81 | 0x86 | 0x87 => {
                            let mut inner = c.pkg()?;
                            inner.name()?;
                            if ext != 0x81 {
                                inner.name()?;
                            }
                            if ext == 0x87 {
                                skip_term(&mut inner, depth)?;
                            }
                            inner.u8()?;
                            self.fields(inner, scope)?;
                        }
                        // Mutex: NameString SyncFlags; Event: NameString.
                        0x01 | 0x02 => {
                            let n = c.name()?;
                            if ext == 0x01 {
                                c.u8()?;
                            }
                            self.define(&n, scope, Obj::Opaque)?;
                        }
                        // Processor, PowerResource, ThermalZone: opaque.
                        0x83..=0x85 => {
                            let mut inner = c.pkg()?;
                            let n = inner.name()?;
                            self.define(&n, scope, Obj::Opaque)?;
                        }
                        _ => return Err(AmlFailure::Unsupported(0x5b00 | u16::from(ext), at)),
                    }
                }
                _ => return Err(AmlFailure::Unsupported(u16::from(op), at)),
            }
        }
        Ok(())
    }

    /// A field list: every named unit is opaque (reading it is hardware).
    fn fields(&mut self, mut c: Cur<'a>, scope: &Path) -> Fail<()> {
        while !c.done() {
            match c.peek().ok_or(AmlFailure::Truncated(c.pos))? {
                0x00 => {
                    c.pos += 1;
                    c.pkg_len_only()?;
                }
                0x01 => {
                    c.bytes(3)?;
                }
                0x03 => {
                    c.bytes(4)?;
                }
                0x02 => {
                    // ConnectField: a name or a buffer.
                    c.pos += 1;
                    if c.peek() == Some(0x11) {
                        c.pos += 1;
                        c.pkg()?;
                    } else {
                        c.name()?;
                    }
                }
                _ => {
                    let seg = c.nameseg()?;
                    c.pkg_len_only()?;
                    let n = RawName {
                        root: false,
                        up: 0,
                        segs: alloc::vec![seg],
                    };
                    self.define(&n, scope, Obj::Opaque)?;
                }
            }
        }
        Ok(())
    }

    /// The object `name` refers to from `scope`: absolute and multi-segment
    /// names as written; a single segment searched upward (ACPI's rules).
    fn lookup(&self, name: &RawName, scope: &[[u8; 4]]) -> Option<(Path, &Obj<'a>)> {
        if !name.root && name.up == 0 && name.segs.len() == 1 {
            for keep in (0..=scope.len()).rev() {
                let mut p = scope[..keep].to_vec();
                p.push(name.segs[0]);
                if let Some(o) = self.objs.get(&p) {
                    return Some((p, o));
                }
            }
            return None;
        }
        let p = absolute(name, scope)?;
        let o = self.objs.get(&p)?;
        Some((p, o))
    }
}

impl Cur<'_> {
    /// A field unit's PkgLength (a bit count, not a byte span).
    fn pkg_len_only(&mut self) -> Fail<()> {
        let lead = self.u8()?;
        self.bytes(usize::from(lead >> 6))?;
        Ok(())
    }
}

/// An integer constant at `c` (after its opcode was read), if `op` is one.
fn constant(op: u8, c: &mut Cur) -> Fail<Option<u64>> {
    Ok(Some(match op {
        0x00 => 0,
        0x01 => 1,
        0xff => u64::MAX,
        0x0a => c.uint(1)?,
        0x0b => c.uint(2)?,
        0x0c => c.uint(4)?,
        0x0e => c.uint(8)?,
        _ => return Ok(None),
    }))
}

/// A DataRefObject / package element (constants, strings, buffers,
/// packages, names).
fn data(c: &mut Cur, scope: &Path, depth: usize) -> Fail<Value> {
    if depth > MAX_DEPTH {
        return Err(AmlFailure::TooDeep);
    }
    let at = c.pos;
    let op = c.peek().ok_or(AmlFailure::Truncated(at))?;
    if Cur::is_name_start(op) {
        let path = c.name()?;
        return Ok(Value::Name {
            path,
            scope: scope.clone(),
        });
    }
    c.pos += 1;
    if let Some(v) = constant(op, c)? {
        return Ok(Value::Int(v));
    }
    match op {
        0x0d => {
            let rest = &c.b[c.pos..];
            let len = rest
                .iter()
                .position(|&x| x == 0)
                .ok_or(AmlFailure::Truncated(at))?;
            let s = c.bytes(len)?.to_vec();
            c.pos += 1;
            Ok(Value::Str(s))
        }
        0x11 => {
            let mut inner = c.pkg()?;
            let op = inner.u8()?;
            let size = constant(op, &mut inner)?.ok_or(AmlFailure::Unsupported(0x11, at))?;
            let size = usize::try_from(size).map_err(|_| AmlFailure::Truncated(at))?;
            if size > 1 << 20 {
                return trunc(at);
            }
            // Shorter initialisers are zero-padded to the declared size.
            let mut v = inner.b[inner.pos..].to_vec();
            if v.len() < size {
                v.resize(size, 0);
            }
            Ok(Value::Buffer(v))
        }
        0x12 => {
            let mut inner = c.pkg()?;
            let count = usize::from(inner.u8()?);
            let mut v = Vec::with_capacity(count);
            while !inner.done() {
                v.push(data(&mut inner, scope, depth + 1)?);
            }
            if v.len() > count {
                return Err(AmlFailure::BadPrt("package longer than declared"));
            }
            // Uninitialised trailing elements read as zero here.
            v.resize(count, Value::Int(0));
            Ok(Value::Package(v))
        }
        _ => Err(AmlFailure::Unsupported(u16::from(op), at)),
    }
}

/// Skips one TermArg at definition level (an OperationRegion's offset or
/// length): constants and names only.
fn skip_term(c: &mut Cur, depth: usize) -> Fail<()> {
    let op = c.peek().ok_or(AmlFailure::Truncated(c.pos))?;
    if Cur::is_name_start(op) {
        c.name()?;
        return Ok(());
    }
    data(c, &Vec::new(), depth).map(|_| ())
}

/// One method invocation's state.
struct Frame {
    scope: Path,
    args: [Value; 7],
    locals: [Value; 8],
}

/// What running a term list ended with.
enum Flow {
    Normal,
    Return(Value),
}

/// The evaluator: the namespace plus writable `Name` values (`\_PIC`
/// stores into `PICF`).
pub struct IntxRouter<'a> {
    ns: Namespace<'a>,
    steps: u32,
    /// Current nesting of expressions and `If` bodies (capped: a deep
    /// expression must not overflow the kernel stack).
    nest: usize,
    /// The root bridge (absolute path).
    pub bridge: Path,
    pub entries: Vec<PrtEntry>,
}

/// Where one `_PRT` entry's pin goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrtSource {
    /// Hard-wired to this GSI (level, active low).
    Gsi(u32),
    /// A link device (absolute path) whose `_CRS` says.
    Link(Path),
}

/// One `_PRT` entry: device `device`, function `function` (0xffff: all),
/// pin 0..=3 (INTA..INTD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrtEntry {
    pub device: u16,
    pub function: u16,
    pub pin: u8,
    pub source: PrtSource,
}

/// The pin a function's INTx pin (1..=4, INTA..INTD) arrives on at the
/// upstream side of a PCI-PCI bridge, for a function at `device` on the
/// bridge's secondary bus (the PCI-to-PCI bridge specification's swizzle).
pub fn swizzle(pin: u8, device: u8) -> u8 {
    ((pin.wrapping_sub(1) & 3) + (device & 3)) % 4 + 1
}

/// The interrupt of a resource template (`_CRS` buffer): the first IRQ or
/// Extended Interrupt descriptor, which must name exactly one line.
pub fn crs_interrupt(b: &[u8]) -> Option<IntxRoute> {
    let mut i = 0;
    while i < b.len() {
        let tag = b[i];
        if tag & 0x80 == 0 {
            let (kind, len) = ((tag >> 3) & 0xf, usize::from(tag & 7));
            let body = b.get(i + 1..i + 1 + len)?;
            match kind {
                // IRQ: 16-bit mask, optional flags (bit 0 edge, bit 3 low).
                0x4 => {
                    let mask = u16::from_le_bytes([*body.first()?, *body.get(1)?]);
                    if mask.count_ones() != 1 {
                        return None;
                    }
                    let flags = body.get(2).copied().unwrap_or(1);
                    return Some(IntxRoute {
                        gsi: mask.trailing_zeros(),
                        level: flags & 1 == 0,
                        active_low: flags & 8 != 0,
                    });
                }
                0xf => return None,
                _ => {}
            }
            i += 1 + len;
        } else {
            let len = usize::from(u16::from_le_bytes([*b.get(i + 1)?, *b.get(i + 2)?]));
            let body = b.get(i + 3..i + 3 + len)?;
            // Extended Interrupt: flags (bit 1 edge, bit 2 low), count, u32s.
            if tag & 0x7f == 0x09 {
                let flags = *body.first()?;
                if *body.get(1)? != 1 {
                    return None;
                }
                let gsi = u32::from_le_bytes(body.get(2..6)?.try_into().ok()?);
                return Some(IntxRoute {
                    gsi,
                    level: flags & 2 == 0,
                    active_low: flags & 4 != 0,
                });
            }
            i += 3 + len;
        }
    }
    None
}

impl<'a> IntxRouter<'a> {
    /// Reads `tables` (the DSDT, then SSDTs), selects IOAPIC mode
    /// (`\_PIC(1)` where defined) and evaluates the root bridge's `_PRT`.
    pub fn new(tables: &[&'a [u8]]) -> Fail<Self> {
        let ns = Namespace::load(tables)?;
        let mut r = Self {
            ns,
            steps: 0,
            nest: 0,
            bridge: Vec::new(),
            entries: Vec::new(),
        };
        let pic = alloc::vec![*b"_PIC"];
        if r.ns.objs.contains_key(&pic) {
            r.invoke(&pic, alloc::vec![Value::Int(1)], 0)?;
        }
        let bridge = r.root_bridge().ok_or(AmlFailure::NoPrt)?;
        let mut prt_path = bridge.clone();
        prt_path.push(*b"_PRT");
        let prt = r.invoke(&prt_path, Vec::new(), 0)?;
        let Value::Package(list) = prt else {
            return Err(AmlFailure::BadPrt("not a package"));
        };
        for e in &list {
            let Value::Package(p) = r.resolve_value(e, 0)? else {
                return Err(AmlFailure::BadPrt("an entry is not a package"));
            };
            let [address, pin, source, index] = p.as_slice() else {
                return Err(AmlFailure::BadPrt("an entry has not 4 elements"));
            };
            let address = r.int(address).ok_or(AmlFailure::BadPrt("address"))?;
            let device = u16::try_from(address >> 16).map_err(|_| AmlFailure::BadPrt("address"))?;
            let pin = r
                .int(pin)
                .filter(|&p| p <= 3)
                .ok_or(AmlFailure::BadPrt("pin"))? as u8;
            let source = match source {
                Value::Int(0) => PrtSource::Gsi(
                    r.int(index)
                        .and_then(|g| u32::try_from(g).ok())
                        .ok_or(AmlFailure::BadPrt("gsi"))?,
                ),
                Value::Name { path, scope } => {
                    let (p, o) =
                        r.ns.lookup(path, scope)
                            .ok_or(AmlFailure::BadPrt("link not defined"))?;
                    if !matches!(o, Obj::Device) {
                        return Err(AmlFailure::BadPrt("link is not a device"));
                    }
                    PrtSource::Link(p)
                }
                _ => return Err(AmlFailure::BadPrt("source")),
            };
            r.entries.push(PrtEntry {
                device,
                function: (address & 0xffff) as u16,
                pin,
                source,
            });
        }
        r.bridge = bridge;
        Ok(r)
    }

    fn int(&self, v: &Value) -> Option<u64> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The first device with `_HID` PNP0A03/PNP0A08 (`_BBN`, `_SEG` absent
    /// or 0) that has a `_PRT`.
    fn root_bridge(&mut self) -> Option<Path> {
        let devices: Vec<Path> = self
            .ns
            .objs
            .iter()
            .filter(|(_, o)| matches!(o, Obj::Device))
            .map(|(p, _)| p.clone())
            .collect();
        devices.into_iter().find(|d| {
            let child = |s: &[u8; 4]| {
                let mut p = d.clone();
                p.push(*s);
                p
            };
            let is_bridge = match self.ns.objs.get(&child(b"_HID")) {
                Some(Obj::Data(Value::Int(i))) => *i == EISA_PNP0A03 || *i == EISA_PNP0A08,
                Some(Obj::Data(Value::Str(s))) => s == b"PNP0A03" || s == b"PNP0A08",
                _ => false,
            };
            let zero = |r: &mut Self, s: &[u8; 4]| {
                let p = child(s);
                !r.ns.objs.contains_key(&p)
                    || matches!(r.invoke(&p, Vec::new(), 0), Ok(Value::Int(0)))
            };
            is_bridge
                && self.ns.objs.contains_key(&child(b"_PRT"))
                && zero(self, b"_BBN")
                && zero(self, b"_SEG")
        })
    }

    /// Where pin `pin` (1..=4, INTA..INTD) of root-bus device `device`,
    /// function `function` arrives.
    pub fn route(&mut self, device: u8, function: u8, pin: u8) -> Fail<IntxRoute> {
        if !(1..=4).contains(&pin) {
            return Err(AmlFailure::NoEntry);
        }
        let entry = self
            .entries
            .iter()
            .find(|e| {
                e.device == u16::from(device)
                    && (e.function == 0xffff || e.function == u16::from(function))
                    && e.pin == pin - 1
            })
            .ok_or(AmlFailure::NoEntry)?;
        let mut crs = match &entry.source {
            PrtSource::Gsi(gsi) => {
                return Ok(IntxRoute {
                    gsi: *gsi,
                    level: true,
                    active_low: true,
                })
            }
            PrtSource::Link(l) => l.clone(),
        };
        crs.push(*b"_CRS");
        self.steps = 0;
        match self.invoke(&crs, Vec::new(), 0)? {
            Value::Buffer(b) => crs_interrupt(&b).ok_or(AmlFailure::BadLink),
            _ => Err(AmlFailure::BadLink),
        }
    }

    /// Evaluates the object at `path`: a method is run with `args`, data
    /// is returned as is.
    fn invoke(&mut self, path: &Path, args: Vec<Value>, depth: usize) -> Fail<Value> {
        if depth > MAX_DEPTH {
            return Err(AmlFailure::TooDeep);
        }
        match self.ns.objs.get(path).cloned() {
            Some(Obj::Data(v)) => Ok(v),
            Some(Obj::Method { body, .. }) => {
                // A method's body is scoped by the method's own name.
                let mut frame = Frame {
                    scope: path.clone(),
                    args: Default::default(),
                    locals: Default::default(),
                };
                for (slot, a) in frame.args.iter_mut().zip(args) {
                    *slot = a;
                }
                match self.run(Cur::new(body), &mut frame, depth)? {
                    Flow::Return(v) => Ok(v),
                    Flow::Normal => Ok(Value::Int(0)),
                }
            }
            Some(Obj::Opaque) => Err(AmlFailure::Refused),
            Some(Obj::Device) | None => Err(AmlFailure::UnknownName),
        }
    }

    fn step(&mut self) -> Fail<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(AmlFailure::TooDeep);
        }
        Ok(())
    }

    /// Runs `inner` one nesting level deeper (capped at [`MAX_DEPTH`]: the
    /// kernel runs this on the main thread's 256 KiB stack).
    fn nested<T>(&mut self, inner: impl FnOnce(&mut Self) -> Fail<T>) -> Fail<T> {
        if self.nest >= MAX_DEPTH {
            return Err(AmlFailure::TooDeep);
        }
        self.nest += 1;
        let r = inner(self);
        self.nest -= 1;
        r
    }

    /// Runs a method's term list.
    fn run(&mut self, c: Cur<'a>, f: &mut Frame, depth: usize) -> Fail<Flow> {
        self.nested(|r| r.run_inner(c, f, depth))
    }

    fn run_inner(&mut self, mut c: Cur<'a>, f: &mut Frame, depth: usize) -> Fail<Flow> {
        while !c.done() {
            self.step()?;
            let at = c.pos;
            match c.peek().ok_or(AmlFailure::Truncated(at))? {
                0xa4 => {
                    c.pos += 1;
                    let v = self.term(&mut c, f, depth)?;
                    return Ok(Flow::Return(v));
                }
                0xa0 => {
                    c.pos += 1;
                    let mut body = c.pkg()?;
                    let pred = self.term(&mut body, f, depth)?;
                    let truth = self.int(&pred).ok_or(AmlFailure::Unsupported(0xa0, at))? != 0;
                    let els = if c.peek() == Some(0xa1) {
                        c.pos += 1;
                        Some(c.pkg()?)
                    } else {
                        None
                    };
                    let flow = if truth {
                        self.run(body, f, depth)?
                    } else if let Some(e) = els {
                        self.run(e, f, depth)?
                    } else {
                        Flow::Normal
                    };
                    if let Flow::Return(v) = flow {
                        return Ok(Flow::Return(v));
                    }
                }
                0xa3 => c.pos += 1, // Noop
                _ => {
                    // An expression statement (Store, a call).
                    self.term(&mut c, f, depth)?;
                }
            }
        }
        Ok(Flow::Normal)
    }

    /// A data value with `Name` references inside packages left as they
    /// are, but a top-level name resolved to its object's value.
    fn resolve_value(&mut self, v: &Value, depth: usize) -> Fail<Value> {
        match v {
            Value::Name { path, scope } => {
                let (p, _) = self.ns.lookup(path, scope).ok_or(AmlFailure::UnknownName)?;
                self.invoke(&p, Vec::new(), depth + 1)
            }
            other => Ok(other.clone()),
        }
    }

    /// Evaluates one TermArg.
    fn term(&mut self, c: &mut Cur<'a>, f: &mut Frame, depth: usize) -> Fail<Value> {
        self.nested(|r| r.term_inner(c, f, depth))
    }

    fn term_inner(&mut self, c: &mut Cur<'a>, f: &mut Frame, depth: usize) -> Fail<Value> {
        self.step()?;
        let at = c.pos;
        let op = c.peek().ok_or(AmlFailure::Truncated(at))?;
        if Cur::is_name_start(op) {
            let n = c.name()?;
            let (p, obj) = self
                .ns
                .lookup(&n, &f.scope)
                .ok_or(AmlFailure::UnknownName)?;
            let nargs = match obj {
                Obj::Method { args, .. } => usize::from(*args),
                _ => 0,
            };
            let mut args = Vec::with_capacity(nargs);
            for _ in 0..nargs {
                args.push(self.term(c, f, depth)?);
            }
            return self.invoke(&p, args, depth + 1);
        }
        match op {
            0x60..=0x67 => {
                c.pos += 1;
                Ok(f.locals[usize::from(op - 0x60)].clone())
            }
            0x68..=0x6e => {
                c.pos += 1;
                Ok(f.args[usize::from(op - 0x68)].clone())
            }
            0x70 => {
                // Store(TermArg, SuperName)
                c.pos += 1;
                let v = self.term(c, f, depth)?;
                self.store(c, f, v.clone())?;
                Ok(v)
            }
            0x90 | 0x91 | 0x93 | 0x94 | 0x95 => {
                c.pos += 1;
                let a = self.term(c, f, depth)?;
                let b = self.term(c, f, depth)?;
                let (Some(a), Some(b)) = (self.int(&a), self.int(&b)) else {
                    return Err(AmlFailure::Unsupported(u16::from(op), at));
                };
                let r = match op {
                    0x90 => a != 0 && b != 0,
                    0x91 => a != 0 || b != 0,
                    0x93 => a == b,
                    0x94 => a > b,
                    _ => a < b,
                };
                Ok(Value::Int(if r { u64::MAX } else { 0 }))
            }
            0x92 => {
                c.pos += 1;
                // LNotEqual/LLessEqual/LGreaterEqual are LNot + compare.
                let v = self.term(c, f, depth)?;
                let v = self.int(&v).ok_or(AmlFailure::Unsupported(0x92, at))?;
                Ok(Value::Int(if v == 0 { u64::MAX } else { 0 }))
            }
            // Data (packages keep the names inside them unresolved).
            _ => data(c, &f.scope, depth),
        }
    }

    /// Stores `v` into a SuperName: a Local, an Arg, a `Name`d integer.
    fn store(&mut self, c: &mut Cur<'a>, f: &mut Frame, v: Value) -> Fail<()> {
        let at = c.pos;
        let op = c.peek().ok_or(AmlFailure::Truncated(at))?;
        match op {
            0x60..=0x67 => {
                c.pos += 1;
                f.locals[usize::from(op - 0x60)] = v;
            }
            0x68..=0x6e => {
                c.pos += 1;
                f.args[usize::from(op - 0x68)] = v;
            }
            0x00 => c.pos += 1, // no target
            _ if Cur::is_name_start(op) => {
                let n = c.name()?;
                let (p, obj) = self
                    .ns
                    .lookup(&n, &f.scope)
                    .ok_or(AmlFailure::UnknownName)?;
                match obj {
                    Obj::Data(_) => {
                        self.ns.objs.insert(p, Obj::Data(v));
                    }
                    Obj::Opaque => return Err(AmlFailure::Refused),
                    _ => return Err(AmlFailure::Unsupported(0x70, at)),
                }
            }
            _ => return Err(AmlFailure::Unsupported(u16::from(op), at)),
        }
        Ok(())
    }
}

impl Default for Value {
    fn default() -> Self {
        Value::Int(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DSDT SeaBIOS/QEMU 10.0.2 built for `q35`, from the recorded
    /// tables page `acpi-q35-7fe0000.bin` (at 0x7fe0040, 8540 bytes).
    fn q35_dsdt() -> &'static [u8] {
        let page = include_bytes!("../../testdata/acpi-q35-7fe0000.bin");
        let t = &page[0x40..];
        assert_eq!(&t[0..4], b"DSDT");
        let len = u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize;
        &t[..len]
    }

    #[test]
    fn q35_prt_routes_through_gsi_links() {
        let dsdt = q35_dsdt();
        let mut r = IntxRouter::new(&[dsdt]).unwrap();
        assert_eq!(r.bridge, [*b"_SB_", *b"PCI0"]);
        // IOAPIC mode (`\_PIC(1)` ran): `PRTA`, 32 slots x 4 pins, each on
        // a GSIx link (PIC mode's `PRTP` would name LNKx).
        assert_eq!(r.entries.len(), 128);
        for e in &r.entries {
            assert_eq!(e.function, 0xffff);
            let PrtSource::Link(l) = &e.source else {
                panic!("{e:?}")
            };
            assert_eq!(l[0], *b"_SB_");
            assert_eq!(&l[1][..3], b"GSI");
        }
        // Every pin of every slot lands on GSI 16..=23, level, active high
        // (the links' `_CRS`); the four pins of a slot on four lines.
        for dev in 0..32 {
            let mut gsis = Vec::new();
            for pin in 1..=4 {
                let route = r.route(dev, 0, pin).unwrap();
                assert!((16..=23).contains(&route.gsi), "{dev} {pin} {route:?}");
                assert!(route.level && !route.active_low);
                gsis.push(route.gsi);
            }
            gsis.sort();
            gsis.dedup();
            assert_eq!(gsis.len(), 4, "slot {dev}");
        }
        // The entry's link, by its name: slot 0 INTA is GSIE = GSI 20.
        let e = r
            .entries
            .iter()
            .find(|e| e.device == 0 && e.pin == 0)
            .unwrap();
        assert_eq!(e.source, PrtSource::Link(alloc::vec![*b"_SB_", *b"GSIE"]));
        assert_eq!(r.route(0, 0, 1).unwrap().gsi, 20);
        assert_eq!(r.route(2, 0, 0), Err(AmlFailure::NoEntry));
        assert_eq!(r.route(2, 0, 5), Err(AmlFailure::NoEntry));
        assert_eq!(r.route(32, 0, 1), Err(AmlFailure::NoEntry));
    }

    #[test]
    fn pic_mode_links_read_hardware_and_are_refused() {
        // Without `\_PIC(1)`, q35's `_PRT` returns the LNKx links, whose
        // `_CRS` reads the PIRQ routing registers (a PCI config field).
        let dsdt = q35_dsdt();
        let mut ns = Namespace::load(&[dsdt]).unwrap();
        ns.objs.remove(&alloc::vec![*b"_PIC"]);
        let mut r = IntxRouter {
            ns,
            steps: 0,
            nest: 0,
            bridge: Vec::new(),
            entries: Vec::new(),
        };
        let crs = alloc::vec![*b"_SB_", *b"LNKA", *b"_CRS"];
        assert_eq!(r.invoke(&crs, Vec::new(), 0), Err(AmlFailure::Refused));
    }

    #[test]
    fn no_or_broken_tables_are_errors_not_panics() {
        assert_eq!(IntxRouter::new(&[]).err(), Some(AmlFailure::NoDsdt));
        assert_eq!(
            IntxRouter::new(&[&[0u8; 10]]).err(),
            Some(AmlFailure::Truncated(0))
        );
        let dsdt = q35_dsdt();
        // Every cut of the table: an error (or, for early cuts, no PRT).
        for cut in (SDT_HEADER + 1..dsdt.len()).step_by(7) {
            assert!(IntxRouter::new(&[&dsdt[..cut]]).is_err(), "cut {cut}");
        }
        // Corrupted bytes anywhere: never a panic.
        for i in (SDT_HEADER..dsdt.len()).step_by(3) {
            let mut t = dsdt.to_vec();
            t[i] ^= 0xa5;
            let _ = IntxRouter::new(&[&t]);
        }
        // A table with no PCI root bridge.
        let mut t = dsdt[..SDT_HEADER].to_vec();
        t.extend_from_slice(&[0x08, b'X', b'X', b'X', b'X', 0x00]); // Name(XXXX, 0)
        assert_eq!(IntxRouter::new(&[&t]).err(), Some(AmlFailure::NoPrt));
    }

    /// Builds `Device(\_SB.PCI0) { Name(_HID, EisaId("PNP0A03")) Name(_PRT, Package{..}) }`.
    fn bridge_with_prt(entries: &[&[u8]]) -> Vec<u8> {
        let mut prt = alloc::vec![entries.len() as u8];
        for e in entries {
            prt.extend_from_slice(e);
        }
        let mut body = b"\\/\x02_SB_PCI0".to_vec();
        body.extend_from_slice(&[0x08, b'_', b'H', b'I', b'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03]);
        body.extend_from_slice(&[0x08, b'_', b'P', b'R', b'T', 0x12]);
        push_pkg(&mut body, &prt);
        let mut t = alloc::vec![0u8; SDT_HEADER];
        t.extend_from_slice(&[0x5b, 0x82]);
        push_pkg(&mut t, &body);
        t
    }

    /// A 3-byte PkgLength (up to 1 MiB) and `body`.
    fn push_pkg(out: &mut Vec<u8>, body: &[u8]) {
        let len = body.len() + 3;
        out.push(0x80 | (len & 0xf) as u8);
        out.push((len >> 4) as u8);
        out.push((len >> 12) as u8);
        out.extend_from_slice(body);
    }

    fn entry(fields: &[u8]) -> Vec<u8> {
        let mut e = alloc::vec![0x12];
        let mut body = alloc::vec![4u8];
        body.extend_from_slice(fields);
        push_pkg(&mut e, &body);
        e
    }

    #[test]
    fn direct_gsi_entries_are_level_low_and_bad_ones_rejected() {
        // VirtualBox-style APIC-mode entries: source 0, index = GSI.
        let a = entry(&[0x0c, 0xff, 0xff, 0x03, 0x00, 0x00, 0x00, 0x0a, 19]);
        let b = entry(&[0x0c, 0x01, 0x00, 0x04, 0x00, 0x01, 0x00, 0x0a, 23]);
        let t = bridge_with_prt(&[&a, &b]);
        let mut r = IntxRouter::new(&[&t]).unwrap();
        let low = |gsi| IntxRoute {
            gsi,
            level: true,
            active_low: true,
        };
        assert_eq!(r.route(3, 5, 1), Ok(low(19)));
        // Function-specific entry: 04.1 INTB only.
        assert_eq!(r.route(4, 1, 2), Ok(low(23)));
        assert_eq!(r.route(4, 0, 2), Err(AmlFailure::NoEntry));
        // Pin 4 (out of range), a source that is neither 0 nor a name.
        for bad in [
            entry(&[0x0c, 0xff, 0xff, 0x03, 0x00, 0x0a, 4, 0x00, 0x0a, 19]),
            entry(&[0x0c, 0xff, 0xff, 0x03, 0x00, 0x00, 0x0a, 7, 0x0a, 19]),
        ] {
            let t = bridge_with_prt(&[&bad]);
            assert!(matches!(
                IntxRouter::new(&[&t]).err(),
                Some(AmlFailure::BadPrt(_))
            ));
        }
        // A link name that is not defined.
        let t = bridge_with_prt(&[&entry(&[
            0x0c, 0xff, 0xff, 0x03, 0x00, 0x00, b'L', b'N', b'K', b'Z', 0x00,
        ])]);
        assert!(matches!(
            IntxRouter::new(&[&t]).err(),
            Some(AmlFailure::BadPrt(_))
        ));
    }

    #[test]
    fn deep_expressions_are_refused_not_a_stack_overflow() {
        // Method (_PRT) { Return (LNot (LNot (... Zero))) }, 50000 deep.
        let mut body = alloc::vec![0x00u8]; // flags: 0 args
        body.push(0xa4);
        body.extend(core::iter::repeat_n(0x92u8, 50_000));
        body.push(0x00);
        let mut m = b"_PRT".to_vec();
        m.extend_from_slice(&body);
        let mut dev = b"\\/\x02_SB_PCI0".to_vec();
        dev.extend_from_slice(&[0x08, b'_', b'H', b'I', b'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03]);
        dev.push(0x14);
        push_pkg(&mut dev, &m);
        let mut t = alloc::vec![0u8; SDT_HEADER];
        t.extend_from_slice(&[0x5b, 0x82]);
        push_pkg(&mut t, &dev);
        assert_eq!(IntxRouter::new(&[&t]).err(), Some(AmlFailure::TooDeep));
    }

    #[test]
    fn crs_templates() {
        // Interrupt(ResourceConsumer, Level, ActiveHigh, Shared) {0x10}
        let ext = [0x89, 0x06, 0x00, 0x09, 0x01, 0x10, 0, 0, 0, 0x79, 0];
        assert_eq!(
            crs_interrupt(&ext),
            Some(IntxRoute {
                gsi: 16,
                level: true,
                active_low: false
            })
        );
        // Edge, active low.
        let ext = [0x89, 0x06, 0x00, 0x07, 0x01, 0x05, 0, 0, 0, 0x79, 0];
        assert_eq!(
            crs_interrupt(&ext),
            Some(IntxRoute {
                gsi: 5,
                level: false,
                active_low: true
            })
        );
        // IRQ(Level, ActiveLow, Shared) {11}; IRQNoFlags() {9} is edge/high.
        assert_eq!(
            crs_interrupt(&[0x23, 0x00, 0x08, 0x18, 0x79, 0]),
            Some(IntxRoute {
                gsi: 11,
                level: true,
                active_low: true
            })
        );
        assert_eq!(
            crs_interrupt(&[0x22, 0x00, 0x02, 0x79, 0]),
            Some(IntxRoute {
                gsi: 9,
                level: false,
                active_low: false
            })
        );
        // Two lines, none, truncated: not one route.
        assert_eq!(crs_interrupt(&[0x22, 0x20, 0x0c, 0x79, 0]), None);
        assert_eq!(
            crs_interrupt(&[0x89, 0x0a, 0x00, 0x09, 0x02, 5, 0, 0, 0, 6, 0, 0, 0]),
            None
        );
        assert_eq!(crs_interrupt(&[0x79, 0]), None);
        assert_eq!(crs_interrupt(&[0x89, 0x06, 0x00, 0x09]), None);
    }

    #[test]
    fn pin_swizzle() {
        // Device 0 behind a bridge: pins pass straight through.
        let s = |dev| (1..=4).map(|p| swizzle(p, dev)).collect::<Vec<_>>();
        assert_eq!(s(0), [1, 2, 3, 4]);
        // Device 1: INTA→INTB, ..., INTD→INTA; device 5 = device 1.
        assert_eq!(s(1), [2, 3, 4, 1]);
        assert_eq!(s(5), s(1));
        assert_eq!(swizzle(4, 3), 3);
    }
}
