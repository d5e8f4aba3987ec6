"""Run by Debian's python3.11 (tests/linux suite, [[debian]] "python"):
threads, json, hashlib, os.listdir and exceptions. Deterministic output
only, one key=value per line."""

import hashlib
import json
import os
import sys
import threading


def threads():
    digests = [None] * 4
    lock = threading.Lock()
    counter = [0]
    barrier = threading.Barrier(4)

    def work(i):
        h = hashlib.sha256()
        for k in range(3000):
            h.update(f"{i}:{k}".encode())
        barrier.wait()
        for _ in range(1000):
            with lock:
                counter[0] += 1
        digests[i] = h.hexdigest()[:16]

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(f"threads_counter={counter[0]}")
    for i, d in enumerate(digests):
        print(f"thread{i}_sha256={d}")
    ev = threading.Event()
    threading.Timer(0.01, ev.set).start()
    print(f"event_set={ev.wait(10)}")


def hashes():
    data = b"skiff" * 1000
    for name in ["md5", "sha1", "sha256", "sha512", "blake2b", "sha3_256"]:
        print(f"{name}={hashlib.new(name, data).hexdigest()}")


def jsons():
    doc = {"name": "skiff", "n": [1, 2.5, None, True, False], "nested": {"u": "\u00fc\u20ac", "e": []}}
    text = json.dumps(doc, sort_keys=True)
    print(f"json={text}")
    print(f"json_roundtrip={json.loads(text) == doc}")
    print(f"json_indent_lines={len(json.dumps(doc, indent=2).splitlines())}")
    try:
        json.loads("{bad")
    except json.JSONDecodeError as e:
        print(f"json_error=pos{e.pos}:{e.msg}")


def files():
    base = f"/tmp/skiff-py-{os.getpid()}"
    os.mkdir(base)
    for name in ["b.txt", "a.txt", "c.dat"]:
        with open(os.path.join(base, name), "w") as f:
            f.write(name * 3)
    os.mkdir(os.path.join(base, "sub"))
    print(f"listdir={','.join(sorted(os.listdir(base)))}")
    print(f"size_a={os.stat(os.path.join(base, 'a.txt')).st_size}")
    os.rename(os.path.join(base, "c.dat"), os.path.join(base, "d.dat"))
    print(f"scandir_files={','.join(sorted(e.name for e in os.scandir(base) if e.is_file()))}")
    print(f"walk={[(os.path.relpath(r, base), sorted(d), sorted(f)) for r, d, f in os.walk(base)][0]}")
    for name in os.listdir(base):
        p = os.path.join(base, name)
        os.rmdir(p) if os.path.isdir(p) else os.remove(p)
    os.rmdir(base)
    print(f"removed={not os.path.exists(base)}")


class SkiffError(Exception):
    pass


def exceptions():
    try:
        {}["missing"]
    except KeyError as e:
        print(f"keyerror={e!r}")
    try:
        1 / 0
    except ZeroDivisionError as e:
        print(f"zerodiv={e}")
    try:
        open("/no/such/file")
    except FileNotFoundError as e:
        print(f"enoent={e.errno}")
    try:
        try:
            raise ValueError("inner")
        except ValueError as e:
            raise SkiffError("outer") from e
    except SkiffError as e:
        print(f"chained={e}<-{e.__cause__}")
    finally:
        print("finally=ran")
    try:
        raise ExceptionGroup("group", [TypeError("t"), OSError("o")])
    except* TypeError as eg:
        print(f"except_star={len(eg.exceptions)}")
    except* OSError:
        print("except_star_os=1")


def main():
    print(f"python={sys.version_info[0]}.{sys.version_info[1]}")
    threads()
    hashes()
    jsons()
    files()
    exceptions()
    sys.stdout.flush()
    sys.exit(7)


main()
