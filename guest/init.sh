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

# record: build record $n in /tmp/rec using builtins plus one sha256sum.
record() {
    esc=''
    i=0
    while [ $i -lt 8 ]; do
        b=$(( (n >> (8 * i)) & 255 ))
        esc="$esc\\$((b >> 6))$(((b >> 3) & 7))$((b & 7))"
        i=$((i + 1))
    done
    { printf 'LKREC001'; printf "$esc"; eval "printf '%015d\n' $ARGS"; } > /tmp/rec
    sum=$(sha256sum < /tmp/rec)
    printf '%s' "${sum%% *}" >> /tmp/rec
}

n=1
while dd if=/dev/vda of=/tmp/disk bs=4096 skip=$((n - 1)) count=1 2>/dev/null \
        && [ -s /tmp/disk ]; do
    record
    cmp -s /tmp/disk /tmp/rec || break
    n=$((n + 1))
done
echo "LKGUEST k=$((n - 1)) start"

while :; do
    record
    if ! dd if=/tmp/rec of=/dev/vda bs=4096 seek=$((n - 1)) count=1 \
            conv=notrunc,fsync oflag=direct 2>/dev/null; then
        echo "LKGUEST full k=$((n - 1))"
        break
    fi
    [ $((n % 50)) -eq 0 ] && echo "LKGUEST k=$n"
    n=$((n + 1))
done
exec sleep 2147483647
