// The x86_64 vDSO image: a complete ELF64 shared object written as
// assembler data, assembled by rustc's integrated assembler into the
// kernel's read-only data (Intel syntax, global_asm's default). Every
// address in it is a difference of labels in this one section, so the
// bytes need no relocation and are the same wherever they are mapped.
// The clock page (see clock.rs for its layout) is the page just below the
// image. Exported as Linux does: __vdso_clock_gettime, __vdso_gettimeofday, __vdso_time,
// __vdso_clock_getres, __vdso_getcpu and their unprefixed weak aliases, version
// LINUX_2.6, soname linux-vdso.so.1.

.pushsection .rodata.skiff_vdso, "a", @progbits
.balign 4096
.globl skiff_vdso_image_start
.hidden skiff_vdso_image_start
skiff_vdso_image_start:
.Lstart:

// ---- ELF header ----
    .byte 0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0     // ELFCLASS64, LSB, SYSV
    .byte 0, 0, 0, 0, 0, 0, 0, 0
    .short 3                                      // ET_DYN
    .short 62                                     // EM_X86_64
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

// ---- .hash (SysV): nbucket 3, nchain 11 ----
.balign 8
.Lhash:
    .long 3, 11
    .long 3, 4, 1                                 // buckets
    .long 0, 2, 6, 5, 0, 7, 0, 8, 9, 10, 0        // chains
.Lhash_end:

// ---- .dynsym ----
.balign 8
.Ldynsym:
    .long 0
    .byte 0, 0
    .short 0
    .quad 0, 0
    .long .Ls_vdso_clock_gettime - .Ldynstr
    .byte 0x12, 0                                 // GLOBAL FUNC
    .short 6                                      // .text
    .quad .Lclock_gettime - .Lstart, .Lclock_gettime_end - .Lclock_gettime
    .long .Ls_clock_gettime - .Ldynstr
    .byte 0x22, 0                                 // WEAK FUNC
    .short 6
    .quad .Lclock_gettime - .Lstart, .Lclock_gettime_end - .Lclock_gettime
    .long .Ls_vdso_gettimeofday - .Ldynstr
    .byte 0x12, 0
    .short 6
    .quad .Lgettimeofday - .Lstart, .Lgettimeofday_end - .Lgettimeofday
    .long .Ls_gettimeofday - .Ldynstr
    .byte 0x22, 0
    .short 6
    .quad .Lgettimeofday - .Lstart, .Lgettimeofday_end - .Lgettimeofday
    .long .Ls_vdso_time - .Ldynstr
    .byte 0x12, 0
    .short 6
    .quad .Ltime - .Lstart, .Ltime_end - .Ltime
    .long .Ls_time - .Ldynstr
    .byte 0x22, 0
    .short 6
    .quad .Ltime - .Lstart, .Ltime_end - .Ltime
    .long .Ls_vdso_clock_getres - .Ldynstr
    .byte 0x12, 0
    .short 6
    .quad .Lclock_getres - .Lstart, .Lclock_getres_end - .Lclock_getres
    .long .Ls_clock_getres - .Ldynstr
    .byte 0x22, 0
    .short 6
    .quad .Lclock_getres - .Lstart, .Lclock_getres_end - .Lclock_getres
    .long .Ls_vdso_getcpu - .Ldynstr
    .byte 0x12, 0
    .short 6
    .quad .Lgetcpu - .Lstart, .Lgetcpu_end - .Lgetcpu
    .long .Ls_getcpu - .Ldynstr
    .byte 0x22, 0
    .short 6
    .quad .Lgetcpu - .Lstart, .Lgetcpu_end - .Lgetcpu
.Ldynsym_end:

// ---- .dynstr ----
.Ldynstr:
    .byte 0
.Ls_soname: .asciz "linux-vdso.so.1"
.Ls_version: .asciz "LINUX_2.6"
.Ls_vdso_clock_gettime: .ascii "__vdso_"
.Ls_clock_gettime: .asciz "clock_gettime"
.Ls_vdso_gettimeofday: .ascii "__vdso_"
.Ls_gettimeofday: .asciz "gettimeofday"
.Ls_vdso_time: .ascii "__vdso_"
.Ls_time: .asciz "time"
.Ls_vdso_clock_getres: .ascii "__vdso_"
.Ls_clock_getres: .asciz "clock_getres"
.Ls_vdso_getcpu: .ascii "__vdso_"
.Ls_getcpu: .asciz "getcpu"
.Ldynstr_end:

// ---- .gnu.version: every symbol LINUX_2.6 (index 2) ----
.balign 2
.Lversym:
    .short 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2
.Lversym_end:

// ---- .gnu.version_d: the base (soname) and LINUX_2.6 ----
.balign 8
.Lverdef:
    .short 1, 1, 1, 1                             // version, VER_FLG_BASE, ndx 1, cnt
    .long 233750433                               // elf_hash("linux-vdso.so.1")
    .long 20, 28                                  // aux, next
    .long .Ls_soname - .Ldynstr, 0
    .short 1, 0, 2, 1                             // ndx 2
    .long 61765110                                // elf_hash("LINUX_2.6")
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
// Reads the clock page (r8; offsets as in clock.rs: 0 seq, 8 mode,
// 16 base, 24 mult, 32 rt_offset) with the seqcount protocol and leaves
// monotonic ns, ((tsc - base) * mult) >> 32, in rax; \rt = 1 adds
// rt_offset (realtime). Clobbers rax, rdx, r9. Jumps to \fallback when the
// page says to make the system call. x86 keeps loads in order, so the
// second read of seq sees any write that overlapped the field loads.
.macro READ_NS fallback, rt
1:
    mov r9, qword ptr [r8]
    test r9d, 1
    jnz 2f
    cmp dword ptr [r8 + 8], 0
    je \fallback
    lfence
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, qword ptr [r8 + 16]
    mul qword ptr [r8 + 24]
    shrd rax, rdx, 32
.if \rt
    add rax, qword ptr [r8 + 32]
.endif
    cmp r9, qword ptr [r8]
    je 3f
2:
    pause
    jmp 1b
3:
.endm

// rax ns → the timespec at rsi; returns 0.
.macro TO_TIMESPEC
    xor edx, edx
    mov ecx, 1000000000
    div rcx
    mov qword ptr [rsi], rax
    mov qword ptr [rsi + 8], rdx
    xor eax, eax
    ret
.endm

.balign 16
.Ltext:

// int clock_gettime(clockid_t id [edi], struct timespec *ts [rsi])
// Served here: REALTIME 0, MONOTONIC 1, MONOTONIC_RAW 4, REALTIME_COARSE
// 5, MONOTONIC_COARSE 6, BOOTTIME 7 (mask 0xf3; realtime ones 0x21); the
// rest by the syscall.
.Lclock_gettime:
    cmp edi, 7
    ja .Lcgt_sys
    mov eax, 0x21f3                               // bit id: served here,
    bt eax, edi                                   // bit 8 + id: realtime
    jnc .Lcgt_sys
    lea r8, [rip + .Lstart - 4096]
    lea ecx, [rdi + 8]
    bt eax, ecx
    jc .Lcgt_realtime
    READ_NS .Lcgt_sys, 0
    TO_TIMESPEC
.Lcgt_realtime:
    READ_NS .Lcgt_sys, 1
    TO_TIMESPEC
.Lcgt_sys:
    mov eax, 228                                  // SYS_clock_gettime
    syscall
    ret
.Lclock_gettime_end:

// int gettimeofday(struct timeval *tv [rdi], struct timezone *tz [rsi])
.balign 16
.Lgettimeofday:
    lea r8, [rip + .Lstart - 4096]
    READ_NS .Lgtod_sys, 1
    test rdi, rdi
    jz 5f
    xor edx, edx
    mov ecx, 1000000000
    div rcx
    mov qword ptr [rdi], rax
    mov eax, edx
    xor edx, edx
    mov ecx, 1000
    div ecx
    mov qword ptr [rdi + 8], rax
5:
    test rsi, rsi
    jz 6f
    mov qword ptr [rsi], 0                        // UTC, no DST
6:
    xor eax, eax
    ret
.Lgtod_sys:
    mov eax, 96                                   // SYS_gettimeofday
    syscall
    ret
.Lgettimeofday_end:

// time_t time(time_t *t [rdi])
.balign 16
.Ltime:
    lea r8, [rip + .Lstart - 4096]
    READ_NS .Ltime_sys, 1
    xor edx, edx
    mov ecx, 1000000000
    div rcx
    test rdi, rdi
    jz 7f
    mov qword ptr [rdi], rax
7:
    ret
.Ltime_sys:
    mov eax, 201                                  // SYS_time
    syscall
    ret
.Ltime_end:

// int clock_getres(clockid_t id [edi], struct timespec *res [rsi]):
// 1 ns for the clocks clock_gettime serves here, as the syscall says.
.balign 16
.Lclock_getres:
    cmp edi, 7
    ja .Lcgr_sys
    mov eax, 0xf3
    bt eax, edi
    jnc .Lcgr_sys
    test rsi, rsi
    jz 8f
    mov qword ptr [rsi], 0
    mov qword ptr [rsi + 8], 1
8:
    xor eax, eax
    ret
.Lcgr_sys:
    mov eax, 229                                  // SYS_clock_getres
    syscall
    ret
.Lclock_getres_end:

// int getcpu(unsigned *cpu, unsigned *node, void *cache): the system
// call (no per-CPU number readable from user mode yet).
.balign 16
.Lgetcpu:
    mov eax, 309                                  // SYS_getcpu
    syscall
    ret
.Lgetcpu_end:
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
