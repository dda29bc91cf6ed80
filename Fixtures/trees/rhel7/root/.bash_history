vi /etc/sysconfig/network-scripts/ifcfg-eth0
reboot
subscription-manager register --username builder@example.com --auto-attach
yum -y update
yum install -y cloud-utils-growpart cloud-init
vi /etc/cloud/cloud.cfg
echo NOZEROCONF=yes >> /etc/sysconfig/network
vi /etc/default/grub
grub2-mkconfig -o /boot/grub2/grub.cfg
subscription-manager repos --disable=*
subscription-manager unregister
yum clean all
poweroff
