sudo apt-get install -y qemu-guest-agent
