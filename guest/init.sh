#!/bin/sh
# Lightkeeper test guest /init (busybox ash, PID 1): the crash-consistency oracle.
#
# Writes numbered records to /dev/vda forever. Record n (from 1) is one 4096-byte block at
# offset (n-1)*4096, written with a single O_DIRECT write and flushed, so a crash-consistent
# snapshot holds either the old or the new block, never half of one. Layout (see records.py):
#   [0,8)       "LKREC001"
#   [8,16)      n, unsigned 64-bit little-endian
#   [16,4032)   payload: the 16-byte line printf('%015d\n', n) repeated 251 times
#   [4032,4096) sha256 of bytes [0,4032), lowercase hex
# At boot it scans from record 1 for the first block that is not exactly record n, so k is the
# last of the contiguous valid records, prints "LKGUEST k=<k> start" and writes k+1, k+2, ...
# printing "LKGUEST k=<n>" every 50 records.
#
# Application-level consistency: it also runs the QEMU guest agent (unless the kernel command
# line says lk.agent=off), whose fsfreeze hook (/etc/lk-fsfreeze-hook) asks the writer to stop
# at a record boundary. Having written record k, the writer then writes a quiesce marker in
# slot k+1 and waits for the thaw, so a snapshot taken while the agent holds the guest frozen
# shows records 1..k followed by the marker naming k; after the thaw the writer overwrites the
# marker with record k+1. Marker layout (records.py): "LKQUIET1", k (u64 LE), 4080 zero bytes.

/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
echo 0 > /proc/sys/kernel/printk 2>/dev/null  # keep kernel chatter off the console we parse

while read -r mod; do
    insmod "/lib/modules/$mod.ko" 2>/dev/null
done < /etc/modules

i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do usleep 50000; i=$((i + 1)); done
if [ ! -b /dev/vda ]; then
    echo "LKGUEST error: no /dev/vda"
    # A writer that has stopped for good is always quiet: the hook need not wait for it.
: > /tmp/lk-quiet
exec sleep 2147483647
fi

# QMP system_powerdown presses the ACPI power button; acpid runs /etc/acpi/PWRF/00000080.
ls /dev/input/event* >/dev/null 2>&1 && acpid -c /etc/acpi -l /dev/null

# A real filesystem for the agent's freeze (FIFREEZE) besides the hook: ext2 on a RAM disk.
if [ -b /dev/ram0 ] && mke2fs /dev/ram0 >/dev/null 2>&1; then
    mount -t ext4 /dev/ram0 /data && echo "written before the freeze" > /data/state
fi

# The guest agent on its virtio-serial port (named by QEMU's virtserialport; no udev here to
# make the /dev/virtio-ports link, so the name is looked up in sysfs).
start_agent() {
    [ -x /bin/qemu-ga ] || return 0
    grep -qw lk.agent=off /proc/cmdline && return 0
    i=0
    while [ $i -lt 100 ]; do
        for name in /sys/class/virtio-ports/*/name; do
            [ -e "$name" ] || continue
            [ "$(cat "$name")" = org.qemu.guest_agent.0 ] || continue
            port=${name%/name}
            port=/dev/${port##*/}
            [ -c "$port" ] || continue
            qemu-ga -m virtio-serial -p "$port" -t /tmp -f /tmp/qga.pid \
                --fsfreeze-hook=/etc/lk-fsfreeze-hook -l /tmp/qga.log &
            echo "LKGUEST agent"
            return 0
        done
        usleep 50000
        i=$((i + 1))
    done
}
start_agent

# ARGS is 251 copies of the literal '$n' so one eval'd builtin printf draws the payload.
ARGS=''
i=0
while [ $i -lt 251 ]; do ARGS="$ARGS \$n"; i=$((i + 1)); done
B=64  # records prepared per batch: one sha256sum fork hashes all of them

# le64 VALUE: esc becomes the printf escapes of VALUE as 8 bytes, little-endian (builtins only).
le64() {
    esc=''
    i=0
    while [ $i -lt 8 ]; do
        b=$(( ($1 >> (8 * i)) & 255 ))
        esc="$esc\\$((b >> 6))$(((b >> 3) & 7))$((b & 7))"
        i=$((i + 1))
    done
}

# body FILE: header and payload of record $n.
body() {
    le64 $n
    { printf 'LKREC001'; printf "$esc"; eval "printf '%015d\n' $ARGS"; } > "$1"
}

# batch FIRST: records FIRST..FIRST+B-1 complete in /tmp/r.0 .. /tmp/r.$((B-1)).
batch() {
    files=''
    j=0
    while [ $j -lt $B ]; do
        n=$(($1 + j))
        body /tmp/r.$j
        files="$files /tmp/r.$j"
        j=$((j + 1))
    done
    sha256sum $files | while read -r sum file; do printf '%s' "$sum" >> "$file"; done
}

# quiesce: records 1..n-1 are on disk; put the marker naming n-1 in slot n, say so, and hold
# the writes until the hook's thaw. Run between records whenever the hook asks.
quiesce() {
    k=$((n - 1))
    le64 $k
    { printf 'LKQUIET1'; printf "$esc"; dd if=/dev/zero bs=4080 count=1 2>/dev/null; } > /tmp/q
    dd if=/tmp/q of=/dev/vda bs=4096 seek=$((n - 1)) count=1 conv=notrunc,fsync oflag=direct \
        2>/dev/null
    echo "LKGUEST quiet k=$k"
    : > /tmp/lk-quiet
    while [ -e /tmp/lk-freeze ]; do usleep 10000; done
    rm -f /tmp/lk-quiet
}

# Scan a batch at a time; inside the first batch that differs, find the first bad record.
first=1
while :; do
    rm -f /tmp/chunk  # a failed read must not leave the last batch's bytes behind
    dd if=/dev/vda of=/tmp/chunk bs=4096 skip=$((first - 1)) count=$B 2>/dev/null
    batch $first
    cat $files > /tmp/expect
    cmp -s /tmp/chunk /tmp/expect || break
    first=$((first + B))
done
j=0
while [ $j -lt $B ]; do
    rm -f /tmp/one
    dd if=/tmp/chunk of=/tmp/one bs=4096 skip=$j count=1 2>/dev/null
    cmp -s /tmp/one /tmp/r.$j || break
    j=$((j + 1))
done
n=$((first + j))
echo "LKGUEST k=$((n - 1)) start"

while :; do
    first=$n
    batch $first
    n=$first
    j=0
    while [ $j -lt $B ]; do
        [ -e /tmp/lk-freeze ] && quiesce
        if ! dd if=/tmp/r.$j of=/dev/vda bs=4096 seek=$((n - 1)) count=1 \
                conv=notrunc,fsync oflag=direct 2>/dev/null; then
            echo "LKGUEST full k=$((n - 1))"
            break 2
        fi
        [ $((n % 50)) -eq 0 ] && echo "LKGUEST k=$n"
        n=$((n + 1))
        j=$((j + 1))
    done
done
# A writer that has stopped for good is always quiet: the hook need not wait for it.
: > /tmp/lk-quiet
exec sleep 2147483647
