vi /etc/sysconfig/network-scripts/ifcfg-eth0
reboot
subscription-manager register --username builder@example.com --auto-attach
yum -y update
yum install -y cloud-utils-growpart cloud-init
vi /etc/cloud/cloud.cfg
echo "#" > /etc/udev/rules.d/75-persistent-net-generator.rules
echo NOZEROCONF=yes >> /etc/sysconfig/network
vi /etc/grub.conf
subscription-manager repos --disable=*
subscription-manager unregister
yum clean all
poweroff
