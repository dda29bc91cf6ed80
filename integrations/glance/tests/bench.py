"""Times one import through Glance's own image_conversion plugin and through imgcustomize's, in the same deployment
(same configuration, database, store and staging area; only the plugin line differs, so the server is restarted in
between), then the bare conversions: `qemu-img convert` against `imgcustomize convert`. Run by scripts/bench-glance.
"""

import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from glance_server import GlanceServer
from test_import import import_image

DISK_FORMATS = ['raw', 'qcow2', 'vmdk', 'iso']


def timed_import(server, source, name):
    start = time.monotonic()
    image, task = import_image(server, source, 'qcow2', name)
    seconds = time.monotonic() - start
    if task['status'] != 'success':
        errors = [line for line in server.log_text().splitlines() if ' ERROR ' in line]
        sys.exit('bench-glance: the import through %s failed: %s\n%s'
                 % (name, task['message'], '\n'.join(errors[-40:])))
    if image.disk_format != 'raw':
        sys.exit('bench-glance: %s stored %s, not raw' % (name, image.disk_format))
    return seconds


def plugin_seconds(server, task_name):
    """How long the plugin's own task ran, from glance-api's log of its state changes."""
    times = {}
    for line in server.log_text().splitlines():
        match = re.match(r"(\S+ \S+) .*Task 'api_image_import-%s-.*transitioned into state '(RUNNING|SUCCESS)'"
                         % task_name, line)
        if match:
            times[match.group(2)] = datetime.datetime.strptime(match.group(1), '%Y-%m-%d %H:%M:%S.%f')
    return (times['SUCCESS'] - times['RUNNING']).total_seconds()


def timed(command):
    start = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


ROUNDS = 5


def bare_conversions(source, imgcustomize, out):
    """The conversion alone, both ways a user can ask for it: left in the page cache (qemu-img's default, and
    `imgcustomize convert --no-fsync`, what the plugin runs) and on the disk when the command returns (qemu-img's
    `-t writeback`, which flushes at the end, and imgcustomize's default). The page cache of this machine's VM is
    noisy (the same 600 MB dd takes 0.3 s or 2.7 s), so each is the median of alternating rounds, each round
    starting from a flushed, idle disk."""
    commands = {
        'left in the page cache': (['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', source, out],
                                   [imgcustomize, 'convert', '-q', '--no-fsync', '-f', 'qcow2', '-O', 'raw', source, out]),
        'on the disk when it returns': (['qemu-img', 'convert', '-t', 'writeback', '-f', 'qcow2', '-O', 'raw', source, out],
                                        [imgcustomize, 'convert', '-q', '-f', 'qcow2', '-O', 'raw', source, out]),
    }
    times = {label: ([], []) for label in commands}
    for _ in range(ROUNDS):
        for label, pair in commands.items():
            for command, samples in zip(pair, times[label]):
                if os.path.exists(out):
                    os.remove(out)
                subprocess.run(['sync'], check=True)
                time.sleep(1)
                samples.append(timed(command))
    os.remove(out)
    return {label: (statistics.median(qemu), statistics.median(ours)) for label, (qemu, ours) in times.items()}


def main():
    source, imgcustomize = sys.argv[1], os.environ['IMGCUSTOMIZE']
    root = tempfile.mkdtemp(prefix='bench-glance.', dir=os.environ.get('TMPDIR', '/var/tmp'))
    server = GlanceServer(root, DISK_FORMATS, ['image_conversion'], {'binary': imgcustomize})
    results, tasks = {}, {}
    try:
        for plugin, task_name in (('image_conversion', 'Convert_Image'), ('imgcustomize', 'Imgcustomize')):
            server.configure_plugins([plugin])
            server.start()
            try:
                results[plugin] = timed_import(server, source, plugin)
                tasks[plugin] = plugin_seconds(server, task_name)
            finally:
                server.stop()
        conversions = bare_conversions(source, imgcustomize, os.path.join(root, 'converted.raw'))
    finally:
        subprocess.run(['rm', '-rf', root])
    glance, mine = results['image_conversion'], results['imgcustomize']
    print('import of %s (upload, staging, conversion, store), wall-clock seconds:' % source)
    print('  image_conversion plugin (qemu-img convert): %7.1f' % glance)
    print('  imgcustomize plugin:                        %7.1f' % mine)
    print('  ratio (image_conversion / imgcustomize):    %7.2f' % (glance / mine))
    print("the plugin's own task (inspection and conversion), from glance-api's log:")
    print('  image_conversion:                           %7.1f' % tasks['image_conversion'])
    print('  imgcustomize:                               %7.1f' % tasks['imgcustomize'])
    print('  ratio (image_conversion / imgcustomize):    %7.2f' % (tasks['image_conversion'] / tasks['imgcustomize']))
    print('conversion alone, qcow2 to raw, median of %d alternating rounds, seconds:' % ROUNDS)
    slower = []
    for label, (qemu, ours) in conversions.items():
        print('  %s:' % label)
        print('    qemu-img:      %6.2f' % qemu)
        print('    imgcustomize:  %6.2f' % ours)
        print('    ratio (qemu-img / imgcustomize): %5.2f' % (qemu / ours))
        if ours > qemu:
            slower.append(label)
    if slower:
        sys.exit('bench-glance: imgcustomize convert was slower than qemu-img convert (%s)' % ', '.join(slower))


if __name__ == '__main__':
    main()
