import Customize
