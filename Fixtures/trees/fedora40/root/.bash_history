dnf -y install cloud-init
