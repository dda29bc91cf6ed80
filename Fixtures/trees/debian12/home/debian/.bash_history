sudo apt-get install -y cloud-init
