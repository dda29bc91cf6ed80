apt-get clean
