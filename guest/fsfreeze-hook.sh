#!/bin/sh
# qemu-ga's fsfreeze hook in the test guest (/etc/lk-fsfreeze-hook): the guest's application
# (the record writer in /init) gets to a consistent point before the agent freezes, and goes
# on after the thaw, the way a database's hook in /etc/qemu/fsfreeze-hook.d flushes and holds
# its writes. "freeze" asks the writer to stop (/tmp/lk-freeze) and waits until it says it
# has (/tmp/lk-quiet: its last record and a quiesce marker are on disk); a writer that does
# not answer in 5 s fails the freeze, so the agent freezes nothing. "thaw" lets it go on.
case "$1" in
freeze)
    : > /tmp/lk-freeze
    i=0
    while [ ! -e /tmp/lk-quiet ] && [ $i -lt 500 ]; do usleep 10000; i=$((i + 1)); done
    if [ ! -e /tmp/lk-quiet ]; then
        rm -f /tmp/lk-freeze
        exit 1
    fi
    ;;
thaw)
    rm -f /tmp/lk-freeze
    ;;
esac
exit 0
