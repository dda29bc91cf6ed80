sudo -i
cat /etc/redhat-release
df -h
ip addr
sudo yum repolist
exit
