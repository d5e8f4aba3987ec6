// The aarch64 vDSO image: a complete ELF64 shared object written as
// assembler data, assembled by rustc's integrated assembler into the
// kernel's read-only data. Every
// address in it is a difference of labels in this one section, so the
// bytes need no relocation and are the same wherever they are mapped.
// The clock page (see clock.rs for its layout) is the page just below the
// image. Exported as Linux does: __kernel_clock_gettime, __kernel_gettimeofday,
// __kernel_clock_getres, version LINUX_2.6.39, soname linux-vdso.so.1.

.pushsection .rodata.skiff_vdso, "a", %progbits
.balign 4096
.globl skiff_vdso_image_start
.hidden skiff_vdso_image_start
skiff_vdso_image_start:
.Lstart:

// ---- ELF header ----
    .byte 0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0     // ELFCLASS64, LSB, SYSV
    .byte 0, 0, 0, 0, 0, 0, 0, 0
    .short 3                                      // ET_DYN
    .short 183                                    // EM_AARCH64
    .long 1                                       // EV_CURRENT
    .quad 0                                       // e_entry
    .quad .Lphdrs - .Lstart                       // e_phoff
    .quad .Lshdrs - .Lstart                       // e_shoff
    .long 0                                       // e_flags
    .short 64, 56, 2                              // ehsize, phentsize, phnum
    .short 64, 9, 8                               // shentsize, shnum, shstrndx

// ---- program headers ----
.Lphdrs:
    .long 1, 5                                    // PT_LOAD, R+X
    .quad 0, 0, 0                                 // offset, vaddr, paddr
    .quad .Lend - .Lstart, .Lend - .Lstart        // filesz, memsz
    .quad 4096
    .long 2, 4                                    // PT_DYNAMIC, R
    .quad .Ldynamic - .Lstart, .Ldynamic - .Lstart, .Ldynamic - .Lstart
    .quad .Ldynamic_end - .Ldynamic, .Ldynamic_end - .Ldynamic
    .quad 8

// ---- .hash (SysV): nbucket 2, nchain 4 ----
.balign 8
.Lhash:
    .long 2, 4
    .long 0, 1                                    // buckets
    .long 0, 2, 3, 0                              // chains
.Lhash_end:

// ---- .dynsym ----
.balign 8
.Ldynsym:
    .long 0
    .byte 0, 0
    .short 0
    .quad 0, 0
    .long .Ls_clock_gettime - .Ldynstr
    .byte 0x12, 0                                 // GLOBAL FUNC
    .short 6                                      // .text
    .quad .Lclock_gettime - .Lstart, .Lclock_gettime_end - .Lclock_gettime
    .long .Ls_gettimeofday - .Ldynstr
    .byte 0x12, 0
    .short 6
    .quad .Lgettimeofday - .Lstart, .Lgettimeofday_end - .Lgettimeofday
    .long .Ls_clock_getres - .Ldynstr
    .byte 0x12, 0
    .short 6
    .quad .Lclock_getres - .Lstart, .Lclock_getres_end - .Lclock_getres
.Ldynsym_end:

// ---- .dynstr ----
.Ldynstr:
    .byte 0
.Ls_soname: .asciz "linux-vdso.so.1"
.Ls_version: .asciz "LINUX_2.6.39"
.Ls_clock_gettime: .asciz "__kernel_clock_gettime"
.Ls_gettimeofday: .asciz "__kernel_gettimeofday"
.Ls_clock_getres: .asciz "__kernel_clock_getres"
.Ldynstr_end:

// ---- .gnu.version: every symbol LINUX_2.6.39 (index 2) ----
.balign 2
.Lversym:
    .short 0, 2, 2, 2
.Lversym_end:

// ---- .gnu.version_d: the base (soname) and LINUX_2.6.39 ----
.balign 8
.Lverdef:
    .short 1, 1, 1, 1                             // version, VER_FLG_BASE, ndx 1, cnt
    .long 233750433                               // elf_hash("linux-vdso.so.1")
    .long 20, 28                                  // aux, next
    .long .Ls_soname - .Ldynstr, 0
    .short 1, 0, 2, 1                             // ndx 2
    .long 123718537                               // elf_hash("LINUX_2.6.39")
    .long 20, 0
    .long .Ls_version - .Ldynstr, 0
.Lverdef_end:

// ---- .dynamic ----
.balign 8
.Ldynamic:
    .quad 4, .Lhash - .Lstart                     // DT_HASH
    .quad 5, .Ldynstr - .Lstart                   // DT_STRTAB
    .quad 6, .Ldynsym - .Lstart                   // DT_SYMTAB
    .quad 10, .Ldynstr_end - .Ldynstr             // DT_STRSZ
    .quad 11, 24                                  // DT_SYMENT
    .quad 14, .Ls_soname - .Ldynstr               // DT_SONAME
    .quad 0x6ffffff0, .Lversym - .Lstart          // DT_VERSYM
    .quad 0x6ffffffc, .Lverdef - .Lstart          // DT_VERDEF
    .quad 0x6ffffffd, 2                           // DT_VERDEFNUM
    .quad 0, 0                                    // DT_NULL
.Ldynamic_end:

// ---- .text ----
// Reads the clock page (x8; offsets as in clock.rs: 0 seq, 8 mode,
// 16 base, 24 mult, 32 rt_offset) with the seqcount protocol: seq with
// acquire (ldar), the fields, dmb ishld, seq again. Leaves monotonic ns,
// ((cntvct - base) * mult) >> 32, in x12; \rt = 1 adds rt_offset
// (realtime). Clobbers x3-x6, x10-x13. Branches to \fallback when the
// page says to make the system call.
.macro READ_NS fallback, rt
1:
    ldar x3, [x8]
    tbnz x3, #0, 2f
    ldr x4, [x8, #8]
    cbz x4, \fallback
    isb
    mrs x5, cntvct_el0
    ldp x4, x6, [x8, #16]
.if \rt
    ldr x10, [x8, #32]
.endif
    dmb ishld
    ldr x11, [x8]
    cmp x11, x3
    b.eq 3f
2:
    yield
    b 1b
3:
    sub x5, x5, x4
    mul x12, x5, x6
    umulh x13, x5, x6
    extr x12, x13, x12, #32
.if \rt
    add x12, x12, x10
.endif
.endm

// x12 ns → the timespec at x1; returns 0.
.macro TO_TIMESPEC
    mov x15, #0xca00                              // 1e9
    movk x15, #0x3b9a, lsl #16
    udiv x16, x12, x15
    msub x17, x16, x15, x12
    stp x16, x17, [x1]
    mov w0, #0
    ret
.endm

.balign 16
.Ltext:

// int __kernel_clock_gettime(clockid_t id [w0], struct timespec *ts [x1])
// Served here: REALTIME 0, MONOTONIC 1, MONOTONIC_RAW 4, REALTIME_COARSE
// 5, MONOTONIC_COARSE 6, BOOTTIME 7 (mask 0xf3; realtime ones 0x21); the
// rest by the syscall.
.Lclock_gettime:
    cmp w0, #7
    b.hi .Lcgt_sys
    mov w2, #0x21f3                               // bit id: served here,
    lsr w2, w2, w0                                // bit 8 + id: realtime
    tbz w2, #0, .Lcgt_sys
    adr x8, .Lstart - 4096
    tbnz w2, #8, .Lcgt_realtime
    READ_NS .Lcgt_sys, 0
    TO_TIMESPEC
.Lcgt_realtime:
    READ_NS .Lcgt_sys, 1
    TO_TIMESPEC
.Lcgt_sys:
    mov x8, #113                                  // SYS_clock_gettime
    svc #0
    ret
.Lclock_gettime_end:

// int __kernel_gettimeofday(struct timeval *tv [x0], struct timezone *tz [x1])
.balign 16
.Lgettimeofday:
    adr x8, .Lstart - 4096
    READ_NS .Lgtod_sys, 1
    cbz x0, 5f
    mov x15, #0xca00                              // 1e9
    movk x15, #0x3b9a, lsl #16
    udiv x16, x12, x15
    msub x17, x16, x15, x12
    mov x15, #1000
    udiv x17, x17, x15
    stp x16, x17, [x0]
5:
    cbz x1, 6f
    str xzr, [x1]                                 // UTC, no DST
6:
    mov w0, #0
    ret
.Lgtod_sys:
    mov x8, #169                                  // SYS_gettimeofday
    svc #0
    ret
.Lgettimeofday_end:

// int __kernel_clock_getres(clockid_t id [w0], struct timespec *res [x1]):
// 1 ns for the clocks clock_gettime serves here, as the syscall says.
.balign 16
.Lclock_getres:
    cmp w0, #7
    b.hi .Lcgr_sys
    mov w2, #0xf3
    lsr w2, w2, w0
    tbz w2, #0, .Lcgr_sys
    cbz x1, 8f
    mov x2, #1
    stp xzr, x2, [x1]
8:
    mov w0, #0
    ret
.Lcgr_sys:
    mov x8, #114                                  // SYS_clock_getres
    svc #0
    ret
.Lclock_getres_end:
.Ltext_end:

// ---- section names and headers (for tools; loaders use the above) ----
.Lshstrtab:
    .byte 0
.Ln_hash: .asciz ".hash"
.Ln_dynsym: .asciz ".dynsym"
.Ln_dynstr: .asciz ".dynstr"
.Ln_versym: .asciz ".gnu.version"
.Ln_verdef: .asciz ".gnu.version_d"
.Ln_text: .asciz ".text"
.Ln_dynamic: .asciz ".dynamic"
.Ln_shstrtab: .asciz ".shstrtab"
.Lshstrtab_end:

.balign 8
.Lshdrs:
    .quad 0, 0, 0, 0, 0, 0, 0, 0                  // 0: null
    // name, type; flags; addr; offset; size; link, info; align; entsize
    .long .Ln_hash - .Lshstrtab, 5                // 1: SHT_HASH
    .quad 2, .Lhash - .Lstart, .Lhash - .Lstart, .Lhash_end - .Lhash
    .long 2, 0
    .quad 8, 4
    .long .Ln_dynsym - .Lshstrtab, 11             // 2: SHT_DYNSYM
    .quad 2, .Ldynsym - .Lstart, .Ldynsym - .Lstart, .Ldynsym_end - .Ldynsym
    .long 3, 1
    .quad 8, 24
    .long .Ln_dynstr - .Lshstrtab, 3              // 3: SHT_STRTAB
    .quad 2, .Ldynstr - .Lstart, .Ldynstr - .Lstart, .Ldynstr_end - .Ldynstr
    .long 0, 0
    .quad 1, 0
    .long .Ln_versym - .Lshstrtab, 0x6fffffff     // 4: SHT_GNU_versym
    .quad 2, .Lversym - .Lstart, .Lversym - .Lstart, .Lversym_end - .Lversym
    .long 2, 0
    .quad 2, 2
    .long .Ln_verdef - .Lshstrtab, 0x6ffffffd     // 5: SHT_GNU_verdef
    .quad 2, .Lverdef - .Lstart, .Lverdef - .Lstart, .Lverdef_end - .Lverdef
    .long 3, 2
    .quad 8, 0
    .long .Ln_text - .Lshstrtab, 1                // 6: SHT_PROGBITS, AX
    .quad 6, .Ltext - .Lstart, .Ltext - .Lstart, .Ltext_end - .Ltext
    .long 0, 0
    .quad 16, 0
    .long .Ln_dynamic - .Lshstrtab, 6             // 7: SHT_DYNAMIC
    .quad 2, .Ldynamic - .Lstart, .Ldynamic - .Lstart, .Ldynamic_end - .Ldynamic
    .long 3, 0
    .quad 8, 16
    .long .Ln_shstrtab - .Lshstrtab, 3            // 8: SHT_STRTAB
    .quad 0, 0, .Lshstrtab - .Lstart, .Lshstrtab_end - .Lshstrtab
    .long 0, 0
    .quad 1, 0
.Lend:
.globl skiff_vdso_image_end
.hidden skiff_vdso_image_end
skiff_vdso_image_end:
.popsection
