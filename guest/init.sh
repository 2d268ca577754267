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
    exec sleep 2147483647
fi

# QMP system_powerdown presses the ACPI power button; acpid runs /etc/acpi/PWRF/00000080.
ls /dev/input/event* >/dev/null 2>&1 && acpid -c /etc/acpi -l /dev/null

# ARGS is 251 copies of the literal '$n' so one eval'd builtin printf draws the payload.
ARGS=''
i=0
while [ $i -lt 251 ]; do ARGS="$ARGS \$n"; i=$((i + 1)); done
B=64  # records prepared per batch: one sha256sum fork hashes all of them

# body FILE: header and payload of record $n (builtins only).
body() {
    esc=''
    i=0
    while [ $i -lt 8 ]; do
        b=$(( (n >> (8 * i)) & 255 ))
        esc="$esc\\$((b >> 6))$(((b >> 3) & 7))$((b & 7))"
        i=$((i + 1))
    done
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
exec sleep 2147483647
